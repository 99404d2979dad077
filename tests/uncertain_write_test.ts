/**
 * C1 after a conditional write that failed without an answer (its reply was
 * lost after it landed): another update of the same key, still using the
 * slot, sets the session back to what the slot last knew as stored (the old
 * value, the initial value, or nothing). Its save must still reach storage,
 * as it does with grammY's own session, which writes every update.
 * Found by an adversarial review of the `Slot.uncertain` change.
 */
import assert from "node:assert/strict";
import { type Context, session as grammySession } from "npm:grammy@^1.46";
import { MemorySessionStorage, session, type SessionFlavor } from "../mod.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";

type Data = { n: number };
type Ctx = Context & SessionFlavor<Data>;

/** A memory storage whose next conditional write or delete lands, then loses its reply. */
class LosesReply extends MemorySessionStorage<Data> {
  loseNext = false;
  #lose<R>(result: R | Promise<R>): Promise<R> {
    const lose = this.loseNext;
    this.loseNext = false;
    return Promise.resolve(result).then((r) => {
      if (lose) throw new Error("simulated lost reply (the write landed)");
      return r;
    });
  }
  override writeIfVersion(key: string, value: Data, expected: string | null) {
    return this.#lose(super.writeIfVersion(key, value, expected));
  }
  override deleteIfVersion(key: string, expected: string | null) {
    return this.#lose(super.deleteIfVersion(key, expected));
  }
  override write(key: string, value: Data) {
    return this.#lose(super.write(key, value));
  }
}

type Variant = "back to the old value" | "back to the initial value" | "deleted";

/** Update A changes n to 1 (its save lands, reply lost); update B then sets `variant`. */
async function run(library: "grammY" | "sessionkit", variant: Variant, seeded: boolean) {
  const storage = new LosesReply();
  if (seeded) await storage.write("1", { n: 0 });
  const h = createHarness<Ctx>();
  const options = { storage, initial: () => ({ n: 0 }) };
  h.bot.use(library === "grammY" ? grammySession(options) : session(options));
  let aDone!: () => void;
  const aFinished = new Promise<void>((resolve) => (aDone = resolve));
  h.bot.on("message", async (ctx) => {
    if (ctx.message.text === "A") {
      ctx.session.n = 1;
      return;
    }
    await aFinished; // B is still running while A's save fails
    if (variant === "back to the old value") ctx.session.n = 0;
    else if (variant === "back to the initial value") ctx.session = { n: 0 };
    else (ctx as unknown as { session: undefined }).session = undefined;
  });
  const b = h.send(message(1, "B"));
  await sleep(5);
  storage.loseNext = true;
  await h.send(message(1, "A"));
  aDone();
  await b;
  const failed = h.errors.map((e) => e.ctx.message?.text);
  return { failed, stored: await storage.read("1") };
}

for (const seeded of [true, false]) {
  for (
    const variant of ["back to the old value", "back to the initial value", "deleted"] as const
  ) {
    Deno.test(`C1: after a lost reply, a change ${variant} by a concurrent update is saved (${seeded ? "stored before" : "nothing stored before"})`, async () => {
      const expected = variant === "deleted" ? undefined : { n: 0 };
      const grammy = await run("grammY", variant, seeded);
      assert.deepEqual(grammy.stored, expected, "grammY: B's save lands");
      const ours = await run("sessionkit", variant, seeded);
      assert.deepEqual(ours.failed, ["A"], "only A fails (its reply was lost)");
      assert.deepEqual(ours.stored, expected, "sessionkit: B's save lands, as with grammY");
    });
  }
}
