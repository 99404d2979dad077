/**
 * Reading `importSessions()` input: JSON Lines bytes split into lines and
 * checked one by one, each line a session to import or a failure that names
 * the line (not JSON, no key, no value, or a number a JavaScript number
 * cannot keep as written).
 *
 * @module
 */

import type { CopyItem } from "./copy_options.ts";
import { messageOf } from "./errors.ts";

const NEWLINE = 0x0a;

/**
 * The lines of `stream`, split at newline bytes (so any line length works
 * and a multi-byte character is never split), as items: a session, or a
 * failure naming the line. Blank lines are left out; a byte order mark at
 * the start is ignored. The stream is cancelled when the consumer stops
 * early.
 *
 * @example
 * ```ts
 * import { jsonLines } from "./jsonl_lines.ts";
 *
 * const text = '{"key":"42","value":{"n":1}}\n\nnot json\n';
 * for await (const item of jsonLines(new Blob([text]).stream())) {
 *   console.log(item.line, item.key, item.error === undefined ? "ok" : String(item.error));
 * }
 * ```
 */
export async function* jsonLines<T>(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<CopyItem<T>> {
  const reader = stream.getReader();
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let number = 0;
  let pieces: Uint8Array[] = [];
  let done = false;
  const parse = (bytes: Uint8Array): CopyItem<T> | undefined => {
    number++;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch (cause) {
      return failure(number, `line ${number} is not valid UTF-8 text`, { cause });
    }
    if (number === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === "") return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (cause) {
      return failure(number, `line ${number} is not valid JSON: ${messageOf(cause)}`, { cause });
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return failure(number, `line ${number} is not a JSON object {"key": ..., "value": ...}`);
    }
    const { key, value } = parsed as { key?: unknown; value?: unknown };
    if (typeof key !== "string") {
      return failure(number, `line ${number} has no "key" string`);
    }
    if (!Object.hasOwn(parsed, "value")) {
      return failure(number, `line ${number} (key ${JSON.stringify(key)}) has no "value"`, {
        key,
      });
    }
    if (value === null) {
      return failure(
        number,
        `line ${number} (key ${JSON.stringify(key)}) has "value": null, which a storage ` +
          `reads as "no session"; leave the line out to have no session`,
        { key },
      );
    }
    // An integer of 16 digits or more may be beyond what a number holds
    // exactly; an exponent of 3 digits, beyond what it holds at all.
    const inexact = /\d{16}|[eE][+-]?\d{3}/.test(text) ? inexactInteger(text) : undefined;
    if (inexact !== undefined && !Number.isFinite(Number(inexact))) {
      return failure(
        number,
        `line ${number} (key ${JSON.stringify(key)}) has the number ${inexact}, beyond what a ` +
          `JavaScript number holds (it would be stored as null); write it as a string to keep it`,
        { key },
      );
    }
    if (inexact !== undefined) {
      return failure(
        number,
        `line ${number} (key ${JSON.stringify(key)}) has the integer ${inexact}, which a ` +
          `JavaScript number cannot keep as written (it would be stored as ` +
          `${JSON.stringify(Number(inexact.replace(/\.0+$/, "")))}); ` +
          `write it as a string ("${inexact.replace(/\.0+$/, "")}") to keep it`,
        { key },
      );
    }
    return { key, given: true, value: value as T, line: number };
  };
  try {
    while (!done) {
      const chunk = await reader.read();
      if (chunk.done) {
        done = true;
        break;
      }
      const bytes = chunk.value;
      let start = 0;
      for (;;) {
        const end = bytes.indexOf(NEWLINE, start);
        if (end < 0) break;
        let line = bytes.subarray(start, end);
        if (pieces.length > 0) {
          line = concat([...pieces, line]);
          pieces = [];
        }
        const item = parse(line);
        if (item !== undefined) yield item;
        start = end + 1;
      }
      if (start < bytes.length) pieces.push(bytes.subarray(start));
    }
    if (pieces.length > 0) {
      const item = parse(concat(pieces));
      pieces = [];
      if (item !== undefined) yield item;
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/**
 * The first integer written in the `"value"` of the JSON object text `text`
 * (digits, with no fraction or a fraction of zeros only, as in `123.0`; no
 * exponent) that a number cannot keep as written, such as a 64-bit id beyond
 * 2^53 from another language, whose digits would be stored otherwise; not
 * the digits `JSON.stringify` writes for a number (an export of sessions
 * that hold large numbers imports as it was); or the first number beyond
 * what a number holds at all (`1e400`, which reads as `Infinity`);
 * `undefined` if there is none. Other numbers with digits after the point
 * or with an exponent are floating point by their writer's choice
 * (`JSON.stringify` writes large numbers as `1e+30`) and are not checked;
 * text inside strings and the line's other members are skipped. `text` is
 * valid JSON (it was parsed).
 */
function inexactInteger(text: string): string | undefined {
  const token = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[{}[\]:]/g;
  let depth = 0;
  let last = "";
  let member: string | undefined;
  for (const [match] of text.matchAll(token)) {
    const first = match.charCodeAt(0);
    if (match === "{" || match === "[") depth++;
    else if (match === "}" || match === "]") depth--;
    else if (match === ":" && depth === 1) member = JSON.parse(last);
    else if (member !== "value" || !(first === 0x2d || (first >= 0x30 && first <= 0x39))) {
      // not a number of the value
    } else if (!Number.isFinite(Number(match))) {
      return match; // such as 1e400: Infinity, which JSON cannot hold
    } else if (/^-?\d+(?:\.0+)?$/.test(match)) {
      const digits = match.replace(/\.0+$/, "");
      // What JSON.stringify writes for a number (as exportSessions does)
      // reads back as the same number and is written again as the same
      // digits, such as 1152921504606847000 for 2^60: kept. Other digits
      // that a number cannot keep (9007199254740993, or 2^64 spelt out
      // exactly, which would be stored as 18446744073709552000): refused.
      if (digits.replace(/^-?0*/, "").length >= 16 && JSON.stringify(Number(digits)) !== digits) {
        return match;
      }
    }
    last = match;
  }
  return undefined;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** An input line that is no session: its error names the line, and the key if it has one. */
function failure<T>(
  line: number,
  message: string,
  { cause, key }: { cause?: unknown; key?: string } = {},
): CopyItem<T> {
  const error = new SyntaxError(message, cause === undefined ? undefined : { cause });
  return key === undefined
    ? { key: "", keyless: true, given: true, line, error }
    : { key, given: true, line, error };
}
