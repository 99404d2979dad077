/**
 * The commands of the command-line tool: what each one opens, does, prints
 * and exits with. Data goes to stdout; messages, progress and errors to
 * stderr.
 *
 * @module
 */

import { copySessions } from "../copy.ts";
import { exportSessions, importSessions } from "../jsonl.ts";
import type { Invocation } from "./args.ts";
import { CliError, EXIT, type ExitCode, reason } from "./exit.ts";
import { StdoutLines, stdoutStream, writeStdout } from "./output.ts";
import { conclude, during, long, say, sessions } from "./long_task.ts";
import { checkDistinct } from "./places.ts";
import { checkTargetEmpty, keysOf, parseAll, withStorages } from "./command_storages.ts";

async function list(inv: Invocation): Promise<ExitCode> {
  const [spec] = parseAll(inv, inv.args.slice(0, 1));
  return await withStorages([[spec, "source"]], async ([opened]) => {
    const out = new StdoutLines();
    try {
      for await (const key of keysOf(opened.storage, inv.prefix)) {
        await out.line(key);
        if (out.closed) break;
      }
      await out.flush();
    } catch (err) {
      await out.flush().catch(() => {});
      during("list", err);
    }
    return EXIT.ok;
  });
}

async function countCommand(inv: Invocation): Promise<ExitCode> {
  const [spec] = parseAll(inv, inv.args.slice(0, 1));
  return await withStorages([[spec, "source"]], async ([opened]) => {
    let n = 0;
    try {
      for await (const _ of keysOf(opened.storage, inv.prefix)) n++;
    } catch (err) {
      during("count", err);
    }
    await writeStdout(new TextEncoder().encode(`${n}\n`));
    return EXIT.ok;
  });
}

async function get(inv: Invocation): Promise<ExitCode> {
  const [url, key] = inv.args;
  const [spec] = parseAll(inv, [url]);
  return await withStorages([[spec, "source"]], async ([opened]) => {
    let value: unknown;
    try {
      value = await opened.storage.read(key);
    } catch (err) {
      during("get", err);
    }
    if (value === undefined || value === null) {
      throw new CliError(
        EXIT.notFound,
        `no session under ${JSON.stringify(key)} in ${opened.label}`,
      );
    }
    await writeStdout(new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`));
    return EXIT.ok;
  });
}

async function deleteCommand(inv: Invocation): Promise<ExitCode> {
  const [url, key] = inv.args;
  const [spec] = parseAll(inv, [url]);
  return await withStorages([[spec, "source"]], async ([opened]) => {
    try {
      if (!(await opened.storage.has!(key))) {
        throw new CliError(
          EXIT.notFound,
          `no session under ${JSON.stringify(key)} in ${opened.label}; nothing deleted`,
        );
      }
      if (inv.dryRun) {
        say(`dry run: would delete ${JSON.stringify(key)} from ${opened.label}; nothing deleted`);
        return EXIT.ok;
      }
      await opened.storage.delete(key);
    } catch (err) {
      during("delete", err);
    }
    say(`deleted ${JSON.stringify(key)} from ${opened.label}`);
    return EXIT.ok;
  });
}

/** How to resume a command writing into a target, after Ctrl-C. */
function resumeHint(inv: Invocation): string {
  return inv.overwrite
    ? `Run the same ${inv.command} again to finish (with --overwrite it writes every session again).`
    : `To resume, run the same ${inv.command} again with --skip-existing: the sessions already ` +
      "there are skipped and the rest are written.";
}

async function copy(inv: Invocation): Promise<ExitCode> {
  const [from, to] = parseAll(inv, inv.args);
  await checkDistinct(from, to);
  return await withStorages(
    [[from, "source"], [to, inv.dryRun ? "dry-target" : "target"]],
    async ([source, target]) => {
      await checkTargetEmpty(inv, target);
      const from = source.storage;
      const into = target.batches?.wrap(target.storage) ?? target.storage;
      const { report, seconds } = await long(inv, {
        verb: "copying",
        source: source.storage,
        run: (options) =>
          copySessions(from, into, {
            prefix: inv.prefix,
            overwrite: inv.overwrite,
            dryRun: inv.dryRun,
            batchSize: inv.batchSize,
            ...options,
          }),
        afterBatch: () => target.batches?.commit(),
      });
      return conclude(inv, report, seconds, {
        done: "copied",
        path: `from ${source.label} to ${target.label}`,
        resume: resumeHint(inv),
        dryNote: target.standIn ? ` (${target.label} does not exist yet)` : undefined,
      });
    },
  );
}

async function exportCommand(inv: Invocation): Promise<ExitCode> {
  const [url, file] = inv.args;
  const [from] = parseAll(inv, [url]);
  return await withStorages([[from, "source"]], async ([source]) => {
    const toStdout = file === "-";
    let existed = false;
    let temp: string | undefined;
    let stream: WritableStream<Uint8Array>;
    if (toStdout) {
      stream = stdoutStream();
    } else {
      existed = await exists(file);
      const isDirectory = existed && (await Deno.stat(file).catch(() => undefined))?.isDirectory;
      if (isDirectory) {
        throw new CliError(EXIT.open, `cannot write ${file}: it is a directory`);
      }
      if (!inv.overwrite && existed) {
        throw new CliError(EXIT.refused, `${file} exists; pass --overwrite to replace it`);
      }
      temp = `${file}.partial-${crypto.randomUUID().slice(0, 8)}`;
      try {
        stream = (await Deno.open(temp, { write: true, createNew: true })).writable;
      } catch (err) {
        throw new CliError(EXIT.open, `cannot write ${file}: ${reason(err)}`);
      }
    }
    let result;
    let written = 0;
    try {
      const from = source.storage;
      result = await long(inv, {
        verb: "exporting",
        source: source.storage,
        run: ({ onProgress, signal }) =>
          exportSessions(from, stream, {
            prefix: inv.prefix,
            batchSize: inv.batchSize,
            signal,
            onProgress: (counts) => {
              written = counts.copied;
              onProgress(counts);
            },
          }),
      });
      if (temp !== undefined && !result.report.aborted) await Deno.rename(temp, file);
    } catch (err) {
      if (temp !== undefined) await Deno.remove(temp).catch(() => {});
      // The reader of stdout went away (`export FROM - | head`): it has what it wanted.
      if (toStdout && brokenPipe(err)) {
        say(`export stopped after ${sessions(written)}: the reader of stdout went away`);
        return EXIT.ok;
      }
      return during("export", err);
    }
    if (temp !== undefined && result.report.aborted) await Deno.remove(temp).catch(() => {});
    return conclude(inv, result.report, result.seconds, {
      done: "exported",
      path: `from ${source.label} to ${toStdout ? "stdout" : file}`,
      resume: "The output is incomplete; run the export again.",
      interrupted: toStdout
        ? undefined
        : ({ copied }) =>
          `${sessions(copied)} of ${source.label} had been read; ${file} was not ` +
          (existed ? "replaced (the one there is as it was" : "written (there is no such file") +
          ": an export writes its file only once it is complete). Run the export again.",
    });
  });
}

async function importCommand(inv: Invocation): Promise<ExitCode> {
  const [file, url] = inv.args;
  const [to] = parseAll(inv, [url]);
  let input: ReadableStream<Uint8Array>;
  let size: number | undefined;
  let closeInput = () => {};
  if (file === "-") {
    input = Deno.stdin.readable;
  } else {
    try {
      const opened = await Deno.open(file);
      closeInput = () => {
        try {
          opened.close();
        } catch {
          // closed with its stream
        }
      };
      const info = await opened.stat();
      if (info.isDirectory) {
        closeInput();
        throw new CliError(EXIT.open, `cannot read ${file}: it is a directory`);
      }
      size = info.isFile ? info.size : undefined;
      input = opened.readable;
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(
        EXIT.open,
        `cannot read ${file}: ${
          err instanceof Deno.errors.NotFound ? "no such file" : reason(err)
        }`,
      );
    }
  }
  let read = 0;
  const counted = input.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        read += chunk.length;
        controller.enqueue(chunk);
      },
    }),
  );
  try {
    return await withStorages(
      [[to, inv.dryRun ? "dry-target" : "target"]],
      async ([target]) => {
        await checkTargetEmpty(inv, target);
        const into = target.batches?.wrap(target.storage) ?? target.storage;
        const { report, seconds } = await long(inv, {
          verb: "importing",
          run: (options) =>
            importSessions(counted, into, {
              prefix: inv.prefix,
              overwrite: inv.overwrite,
              dryRun: inv.dryRun,
              batchSize: inv.batchSize,
              ...options,
            }),
          setup: (progress) => {
            if (size !== undefined && size > 0) progress.fraction = () => read / size!;
          },
          afterBatch: () => target.batches?.commit(),
        });
        return conclude(inv, report, seconds, {
          done: "imported",
          path: `from ${file === "-" ? "stdin" : file} into ${target.label}`,
          resume: resumeHint(inv),
          dryNote: target.standIn ? ` (${target.label} does not exist yet)` : undefined,
        });
      },
    );
  } finally {
    await counted.cancel().catch(() => {});
    closeInput();
  }
}

/** Whether `err`, or an error it was caused by, is a closed pipe. */
function brokenPipe(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (e instanceof Deno.errors.BrokenPipe) return true;
  }
  return false;
}

/** Whether `path` exists. */
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw new CliError(EXIT.open, `cannot use ${path}: ${reason(err)}`);
  }
}

/**
 * Runs a parsed command line; returns the exit code, or throws a
 * `CliError` whose message is the one line to print.
 */
export async function runCommand(inv: Invocation): Promise<ExitCode> {
  switch (inv.command) {
    case "list":
      return await list(inv);
    case "count":
      return await countCommand(inv);
    case "get":
      return await get(inv);
    case "delete":
      return await deleteCommand(inv);
    case "copy":
      return await copy(inv);
    case "export":
      return await exportCommand(inv);
    case "import":
      return await importCommand(inv);
    case "help":
      return EXIT.ok;
  }
}
