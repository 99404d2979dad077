/**
 * Parsing the command line: the command, its arguments and its options,
 * each checked against what that command takes, so that a mistake is one
 * usage error (exit code 2) before any storage is opened.
 *
 * Options may come before, between or after the arguments, as `--name value`
 * or `--name=value`; `--` ends the options (for a key starting with `-`); a
 * lone `-` is an argument (standard input or output).
 *
 * @module
 */

import { closest } from "../closest_name.ts";
import { usage } from "./exit.ts";

/** The options of the commands that write sessions into a target (copy, import). */
const WRITING = [
  "prefix",
  "table",
  "dry-run",
  "overwrite",
  "skip-existing",
  "batch-size",
  "no-progress",
];

/** The commands, in the order `--help` lists them. */
export const COMMANDS = {
  list: { args: ["STORAGE"], options: ["prefix", "table"] },
  count: { args: ["STORAGE"], options: ["prefix", "table"] },
  get: { args: ["STORAGE", "KEY"], options: ["table"] },
  delete: { args: ["STORAGE", "KEY"], options: ["table", "dry-run"] },
  copy: { args: ["FROM", "TO"], options: WRITING },
  export: {
    args: ["FROM", "FILE"],
    options: ["prefix", "table", "overwrite", "batch-size", "no-progress"],
  },
  import: { args: ["FILE", "TO"], options: WRITING },
  help: { args: [], options: [] },
} as const satisfies Record<string, { args: readonly string[]; options: readonly string[] }>;

/** A command's name. */
export type CommandName = keyof typeof COMMANDS;

/** Options that take a value; the others are flags. */
const VALUED = ["prefix", "table", "batch-size"];
/** Every option, for suggestions. */
const ALL = ["help", ...new Set(Object.values(COMMANDS).flatMap((c) => c.options))];

/** A parsed command line. */
export interface Invocation {
  /** The command. */
  command: CommandName;
  /** Its arguments, in order (as many as the command takes). */
  args: string[];
  /** `--prefix`: only sessions whose key starts with it. */
  prefix?: string;
  /** `--table`: the table of every SQL storage whose URL names none. */
  table?: string;
  /** `--dry-run`: say what would be done, change nothing. */
  dryRun: boolean;
  /** `--overwrite`: replace sessions the target holds (or the export file). */
  overwrite: boolean;
  /** `--skip-existing`: keep sessions the target holds, copy the rest. */
  skipExisting: boolean;
  /** `--batch-size`: sessions per batch. */
  batchSize?: number;
  /** `--no-progress` turns the progress display off. */
  progress: boolean;
}

/**
 * Parses `argv` (the arguments after the program). Returns `"help"` for
 * `--help`, `-h` or the `help` command; throws a usage `CliError` for
 * anything wrong.
 *
 * @example
 * ```ts
 * import { parseArgs } from "./args.ts";
 *
 * parseArgs(["count", "sqlite:sessions.db", "--prefix=user:"]);
 * // { command: "count", args: ["sqlite:sessions.db"], prefix: "user:", ... }
 * ```
 */
export function parseArgs(argv: readonly string[]): Invocation | "help" {
  const words: string[] = [];
  const given = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === "--") {
      words.push(...argv.slice(i + 1));
      break;
    }
    if (word === "-h" || word === "--help") return "help";
    if (!word.startsWith("-") || word === "-") {
      words.push(word);
      continue;
    }
    if (!word.startsWith("--")) {
      throw usage(`unknown option ${word}; options are spelt out, such as --prefix`);
    }
    const eq = word.indexOf("=");
    const name = word.slice(2, eq === -1 ? undefined : eq);
    if (!ALL.includes(name)) {
      const close = closest(name, ALL);
      throw usage(`unknown option --${name}${close ? ` (did you mean --${close}?)` : ""}`);
    }
    if (given.has(name)) throw usage(`--${name} is given twice`);
    if (VALUED.includes(name)) {
      let value: string;
      if (eq !== -1) value = word.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i];
      else throw usage(`--${name} needs a value`);
      given.set(name, value);
    } else {
      if (eq !== -1) throw usage(`--${name} takes no value`);
      given.set(name, true);
    }
  }

  if (words.length === 0) throw usage("no command given");
  const [name, ...args] = words;
  if (!Object.hasOwn(COMMANDS, name)) {
    const close = closest(name, Object.keys(COMMANDS));
    throw usage(`unknown command "${name}"${close ? ` (did you mean ${close}?)` : ""}`);
  }
  const command = name as CommandName;
  if (command === "help") return "help";
  const spec = COMMANDS[command];
  for (const option of given.keys()) {
    if (!(spec.options as readonly string[]).includes(option)) {
      throw usage(`--${option} does not apply to ${command}`);
    }
  }
  if (args.length !== spec.args.length) {
    const form = `${command} ${spec.args.join(" ")}`;
    throw usage(
      args.length < spec.args.length
        ? `${command} needs ${spec.args.slice(args.length).join(" and ")}: ${form}`
        : `${command} takes ${spec.args.length} arguments, got ${args.length}: ${form}` +
          " (quote a key with spaces; put -- before a key starting with -)",
    );
  }
  if (given.has("overwrite") && given.has("skip-existing")) {
    throw usage("--overwrite and --skip-existing exclude each other; choose one");
  }

  const text = (option: string) => {
    const value = given.get(option);
    return typeof value === "string" ? value : undefined;
  };
  const table = text("table");
  if (table === "") throw usage("--table needs a name");
  const batch = text("batch-size");
  let batchSize: number | undefined;
  if (batch !== undefined) {
    batchSize = Number(batch);
    if (!/^\d+$/.test(batch) || !Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw usage(`--batch-size must be a whole number of sessions, at least 1, got "${batch}"`);
    }
  }
  return {
    command,
    args,
    prefix: text("prefix") || undefined,
    table,
    dryRun: given.has("dry-run"),
    overwrite: given.has("overwrite"),
    skipExisting: given.has("skip-existing"),
    batchSize,
    progress: !given.has("no-progress"),
  };
}
