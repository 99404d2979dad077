/**
 * The sessionkit command-line tool: list, inspect, delete, count, copy,
 * back up and restore the sessions of grammY bots in any sessionkit
 * storage, each named by a URL (`redis://…`, `postgres://…`, `mysql://…`,
 * `sqlite:PATH`, `kv:PATH`, `kv:`).
 *
 * ```sh
 * deno run -A --unstable-kv jsr:@sessionkit/grammy/cli --help
 * deno run -A jsr:@sessionkit/grammy/cli list redis://127.0.0.1:6379
 * deno run -A jsr:@sessionkit/grammy/cli count 'postgres://postgres@127.0.0.1/test?table=sessions'
 * deno run -A jsr:@sessionkit/grammy/cli get sqlite:sessions.db 123456789
 * deno run -A jsr:@sessionkit/grammy/cli copy sqlite:sessions.db redis://127.0.0.1:6379 --dry-run
 * deno run -A --unstable-kv jsr:@sessionkit/grammy/cli export kv:sessions.kv backup.jsonl
 * deno run -A jsr:@sessionkit/grammy/cli import backup.jsonl mysql://root@127.0.0.1/bot
 * ```
 *
 * `list`, `count`, `get` and `delete` take the storage as their first
 * argument; `copy FROM TO`, `export FROM FILE` and `import FILE TO` name
 * both ends. Options: `--prefix` (only keys starting with it), `--table`
 * (SQL storages), `--dry-run`, `--overwrite` or `--skip-existing` (for a
 * target that already holds sessions: without one of them, copy and import
 * refuse), `--batch-size`, `--no-progress`. A storage's own options go in
 * its URL's query: `?prefix=` (Redis and Deno KV key prefix), `?table=`,
 * `?schema=`, `?ttl=`. Exit status: 0 done, 1 some sessions failed, 2 usage
 * error, 3 a storage cannot be opened, 4 refused (target not empty), 5 no
 * such session, 130 interrupted (resume a copy with `--skip-existing`).
 * `--help` has all of it.
 *
 * The same copies from code: `copySessions`, `exportSessions` and
 * `importSessions` in the main entry point.
 *
 * @module
 */

import { parseArgs } from "./src/cli/args.ts";
import { runCommand } from "./src/cli/commands.ts";
import { CliError, EXIT, reason } from "./src/cli/exit.ts";
import { HELP } from "./src/cli/help.ts";
import { writeStdout } from "./src/cli/output.ts";
import { writeStderr } from "./src/cli/progress.ts";

/**
 * Runs the tool with the arguments `args` (those after the program) and
 * returns its exit status; output goes to stdout and stderr as described
 * in `--help`. Errors are printed as one line, never thrown.
 *
 * @example
 * ```ts ignore
 * import { main } from "@sessionkit/grammy/cli";
 *
 * Deno.exit(await main(["count", "sqlite:sessions.db"]));
 * ```
 *
 * @param args The command line, such as `["count", "sqlite:sessions.db"]`.
 * @returns The exit status: 0 done, 1 some sessions failed, 2 usage error,
 *   3 a storage cannot be opened, 4 refused, 5 no such session, 130
 *   interrupted.
 */
export async function main(args: readonly string[]): Promise<number> {
  try {
    const invocation = parseArgs(args);
    if (invocation === "help") {
      await writeStdout(new TextEncoder().encode(HELP));
      return EXIT.ok;
    }
    return await runCommand(invocation);
  } catch (err) {
    if (err instanceof CliError) {
      writeStderr(`sessionkit: ${err.message}\n`);
      return err.code;
    }
    writeStderr(`sessionkit: unexpected error: ${reason(err)}\n`);
    return EXIT.failed;
  }
}

if (import.meta.main) {
  // A stray rejection of a driver (a connection dropping while closing) is
  // no reason for a stack trace: say it in one line and carry on.
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    writeStderr(`sessionkit: ${reason(event.reason)}\n`);
  });
  Deno.exit(await main(Deno.args));
}
