/**
 * Standard output for data (`list`, `count`, `get`, `export -`): buffered,
 * written in full, and quiet when the reader goes away (`… list | head`):
 * the command then stops early instead of failing.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Writes all of `bytes` to stdout; `false` when stdout is closed. */
export async function writeStdout(bytes: Uint8Array): Promise<boolean> {
  try {
    for (let done = 0; done < bytes.length;) done += await Deno.stdout.write(bytes.subarray(done));
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.BrokenPipe) return false;
    throw err;
  }
}

/**
 * Lines on stdout, written 64 KiB at a time.
 *
 * @example
 * ```ts
 * import { StdoutLines } from "./output.ts";
 *
 * const out = new StdoutLines();
 * await out.line("42");
 * await out.flush();
 * ```
 */
export class StdoutLines {
  #buffer = "";
  #closed = false;

  /** Whether the reader went away (nothing more is written). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Adds `text` and a newline. */
  async line(text: string): Promise<void> {
    this.#buffer += text + "\n";
    if (this.#buffer.length >= 65536) await this.flush();
  }

  /** Writes what is buffered. */
  async flush(): Promise<void> {
    const text = this.#buffer;
    this.#buffer = "";
    if (this.#closed || text === "") return;
    if (!(await writeStdout(encoder.encode(text)))) this.#closed = true;
  }
}

/** A stream onto stdout that leaves stdout open when it is closed. */
export function stdoutStream(): WritableStream<Uint8Array> {
  return new WritableStream({
    async write(chunk) {
      if (!(await writeStdout(chunk))) throw new Deno.errors.BrokenPipe("stdout was closed");
    },
  });
}
