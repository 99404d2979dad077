/**
 * The command-line tool's exit codes, the error that carries one, and the
 * wording of a failure as one line (no stack, no newlines).
 *
 * @module
 */

/** What the process exits with; `--help` lists the same table. */
export const EXIT = {
  /** Everything was done. */
  ok: 0,
  /** The command ran, but some sessions failed, or the storage failed in the middle. */
  failed: 1,
  /** The command line is wrong: unknown command or option, missing argument, not a storage URL. */
  usage: 2,
  /** A storage (or file) cannot be opened: unreachable server, refused login, no such file or table. */
  open: 3,
  /** Refused: the target already holds sessions (or the export file exists). */
  refused: 4,
  /** `get` or `delete`: no session is stored under the key. */
  notFound: 5,
  /** Stopped by Ctrl-C (SIGINT). */
  interrupted: 130,
} as const;

/** One of {@link EXIT}'s codes. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the tool reports as one line on stderr, then exits with `code`. */
export class CliError extends Error {
  /** The exit code. */
  readonly code: ExitCode;

  /**
   * @param code The exit code.
   * @param message The line to print (after `sessionkit: `).
   */
  constructor(code: ExitCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CliError";
    this.code = code;
  }
}

/** A usage error: exit code 2, with a pointer to `--help`. */
export function usage(message: string): CliError {
  return new CliError(EXIT.usage, `${message} (see --help)`);
}

/**
 * The reason of `err` in one line: its message (or its code, or its name),
 * whitespace runs folded, followed by the message of its cause when that
 * says something the message does not.
 */
export function reason(err: unknown): string {
  if (!(err instanceof Error)) return fold(String(err));
  const code = (err as { code?: unknown }).code;
  let text = fold(err.message || (typeof code === "string" ? code : "") || err.name);
  const cause = err.cause;
  if (cause instanceof Error && cause.message && !text.includes(fold(cause.message))) {
    text += ` (${fold(cause.message)})`;
  }
  return text;
}

/** `text` on one line. */
export function fold(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}
