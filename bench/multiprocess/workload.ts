/**
 * The traffic of the multi-process benchmark: which chat each update comes
 * from. Chats are drawn from a Zipf distribution over `chats` chats (a few
 * busy groups, a long tail of quiet private chats), from a seeded generator
 * so that a run can be repeated exactly; exponent 0 draws uniformly.
 *
 * @module
 */

import type { Update } from "npm:grammy@^1.46/types";

/** The session every run stores: one counter, incremented by every update. */
export interface Data {
  count: number;
}

/** A new session value. */
export const initial = (): Data => ({ count: 0 });

/** A small seeded PRNG (mulberry32): numbers in [0, 1). */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A picker of chat ids 1..chats, chat k drawn with weight 1 / k^exponent.
 * With 10,000 chats and exponent 1, chat 1 gets 10.2% of the updates, the
 * ten busiest 30%, and about 60% of the chats are seen in 10,000 updates.
 */
export function chatPicker(chats: number, exponent: number, seed: number): () => number {
  const cdf = new Float64Array(chats);
  let total = 0;
  for (let k = 1; k <= chats; k++) cdf[k - 1] = total += 1 / k ** exponent;
  const next = random(seed);
  return () => {
    const x = next() * total;
    let lo = 0;
    let hi = chats - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  };
}

/** The share of updates that the busiest chat gets, for the report. */
export function hottestShare(chats: number, exponent: number): number {
  let total = 0;
  for (let k = 1; k <= chats; k++) total += 1 / k ** exponent;
  return 1 / total;
}

/** A text message in private chat `chat`. */
export function message(updateId: number, chat: number): Update {
  return {
    update_id: updateId,
    message: {
      message_id: updateId,
      date: 1_700_000_000,
      chat: { id: chat, type: "private", first_name: "User" },
      from: { id: chat, is_bot: false, first_name: "User" },
      text: "hello",
    },
  } as Update;
}
