/**
 * The command-line tool (cli.ts), driven as a user drives it: every run is
 * a real `deno run -A cli.ts …` process, and what is checked is what a user
 * sees: the exit status, stdout and stderr; what a command wrote is read
 * back with the storage classes. Against real Redis (a unique
 * `sessionkit-test:` prefix), PostgreSQL (a unique table, dropped with its
 * lease table and function afterwards), MariaDB, SQLite and Deno KV files
 * in a temporary directory.
 *
 * Covered: `--help`; every command's output and exit status; usage errors,
 * an unknown scheme, a wrong URL, an unreachable server, a missing file or
 * table and a target that is not empty, each as ONE line on stderr with no
 * stack trace and its own exit status; and a copy of 20,000 sessions into
 * SQLite stopped by SIGINT after its first progress line, then resumed by a
 * second run that copies only the rest.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SqliteStorage } from "../storages/sqlite.ts";
import { DenoKvStorage } from "../storages/denokv.ts";
import { RedisStorage } from "../storages/redis.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { MysqlStorage } from "../storages/mysql.ts";
import { deleteUnder, openAdmin, REDIS_URL, redisTest, uniquePrefix } from "./redis_env.ts";
import * as pgEnv from "./postgres_setup.ts";
import * as myEnv from "./mysql_setup.ts";
import { Progress } from "../src/cli/progress.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const CLI = `${ROOT}cli.ts`;

/** What a run of the tool gave. */
interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A cli.ts ...args` from the repository root. */
async function cli(
  args: string[],
  options: { stdin?: string; denoFlags?: string[]; cwd?: string } = {},
): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...(options.denoFlags ?? []), CLI, ...args],
    cwd: options.cwd ?? ROOT,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  // Deno's own lines while it fetches a package into a cold cache (the run with --no-config
  // resolves npm: packages apart from this project's) are not the tool's output.
  const stderr = decoder.decode(out.stderr).replace(/^Download https?:\/\/\S+\n/gm, "");
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr };
}

/** Asserts that `run` ended with `code` and one line on stderr matching `pattern`, no stack. */
function oneLine(run: Run, code: number, pattern: RegExp): void {
  const detail = `exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`;
  assert.equal(run.code, code, detail);
  assert.equal(run.stderr.endsWith("\n"), true, detail);
  assert.equal(run.stderr.trimEnd().split("\n").length, 1, `not one line: ${detail}`);
  assert.match(run.stderr, /^sessionkit: /, detail);
  assert.match(run.stderr, pattern, detail);
  assert.doesNotMatch(run.stderr, /\bat .*:\d+:\d+|Uncaught|Stack backtrace/, detail);
  assert.equal(run.stdout, "", detail);
}

/** Asserts exit status 0 and returns the run. */
function ok(run: Run): Run {
  assert.equal(run.code, 0, `exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  return run;
}

const SESSIONS: Record<string, unknown> = {
  "user:1": { count: 1, name: "Ada" },
  "user:2": { count: 2, tags: ["a", "b"], nested: { deep: [1, { x: null }] } },
  "chat:-100": { text: "ünïcödé ✓ \u{1F600}", empty: {} },
};

/** A SQLite file with `sessions`, written through the storage. */
function seedSqlite(path: string, sessions: Record<string, unknown>, table = "sessions"): void {
  const db = new DatabaseSync(path);
  const storage = new SqliteStorage(db, { table });
  db.exec("BEGIN");
  for (const [key, value] of Object.entries(sessions)) storage.write(key, value);
  db.exec("COMMIT");
  db.close();
}

/** Everything in a SQLite file's table, as an object. */
async function readSqlite(path: string, table = "sessions"): Promise<Record<string, unknown>> {
  const db = new DatabaseSync(path);
  try {
    const out: Record<string, unknown> = {};
    for await (const [key, value] of new SqliteStorage(db, { table }).readAllEntries()) {
      out[key] = value;
    }
    return out;
  } finally {
    db.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

const dir = await Deno.makeTempDir({ prefix: "sessionkit-cli-" });
const path = (name: string) => `${dir}/${name}`;
// Removed when the run ends, however many of the tests ran.
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

Deno.test({
  name: "cli: --help, usage errors and wrong URLs",
  sanitizeResources: false,
  fn: async (t) => {
    await t.step("--help reads like a manual page, on stdout, exit 0", async () => {
      const [long, short, command] = await Promise.all([
        cli(["--help"]),
        cli(["-h"]),
        cli(["help"]),
      ]);
      ok(long);
      assert.equal(long.stderr, "");
      for (
        const heading of [
          "NAME",
          "SYNOPSIS",
          "DESCRIPTION",
          "COMMANDS",
          "STORAGES",
          "OPTIONS",
          "PROGRESS",
          "INTERRUPTING",
          "EXIT STATUS",
          "EXAMPLES",
        ]
      ) {
        assert.match(long.stdout, new RegExp(`^${heading}$`, "m"), heading);
      }
      for (const word of ["list", "get", "delete", "count", "copy", "export", "import"]) {
        assert.match(long.stdout, new RegExp(`^    ${word} `, "m"), word);
      }
      for (const flag of ["--prefix", "--table", "--dry-run", "--overwrite", "--skip-existing"]) {
        assert.ok(long.stdout.includes(flag), flag);
      }
      for (const code of ["0", "1", "2", "3", "4", "5", "130"]) {
        assert.match(long.stdout, new RegExp(`^    ${code} +\\S`, "m"), `exit status ${code}`);
      }
      assert.equal(short.stdout, long.stdout);
      assert.equal(command.stdout, long.stdout);
      assert.equal(long.stdout.split("\n").every((line) => line.length <= 100), true);
    });

    await t.step("usage errors: one line, exit 2", async () => {
      const db = path("usage.db");
      const cases: [string[], RegExp][] = [
        [[], /no command given/],
        [["lst", `sqlite:${db}`], /unknown command "lst" \(did you mean list\?\)/],
        [["list"], /list needs STORAGE/],
        [["get", `sqlite:${db}`], /get needs KEY/],
        [["count", `sqlite:${db}`, "extra"], /count takes 1 arguments, got 2/],
        [
          ["list", `sqlite:${db}`, "--prefx", "a"],
          /unknown option --prefx \(did you mean --prefix\?\)/,
        ],
        [["list", `sqlite:${db}`, "--prefix"], /--prefix needs a value/],
        [["get", `sqlite:${db}`, "k", "--dry-run"], /--dry-run does not apply to get/],
        [["copy", "kv:a", "kv:b", "--overwrite", "--skip-existing"], /exclude each other/],
        [["copy", "kv:a", "kv:b", "--batch-size", "0"], /--batch-size must be a whole number/],
        [["copy", `sqlite:${db}`, `sqlite:${db}`], /FROM and TO are the same storage/],
        [["list", "redis://127.0.0.1:6379", "--table", "t"], /--table applies to sqlite:/],
        [["list", "ftp://example.com/x"], /unknown storage scheme "ftp:"/],
        [["list", "redis//127.0.0.1:6379"], /"redis\/\/127\.0\.0\.1:6379" is no storage URL/],
        [["list", "sessions.db"], /"sessions\.db" is no storage URL/],
        [["list", "redis://"], /names no host/],
        [["list", "postgres://[oops/db"], /is no valid URL/],
        [["list", "sqlite:"], /names no file/],
        [["list", `sqlite:${db}?tabel=x`], /unknown parameter "tabel"/],
        [["list", "redis://127.0.0.1:6379?ttl=soon"], /ttl must be a whole number/],
      ];
      const runs = await Promise.all(cases.map(([args]) => cli(args)));
      for (const [i, run] of runs.entries()) oneLine(run, 2, cases[i][1]);
      // Nothing was created by any of them.
      assert.equal(await exists(db), false);
    });

    await t.step(
      "copy into itself however it is spelt, or into a nested Redis prefix: exit 2",
      async () => {
        const self = path("self.db");
        seedSqlite(self, SESSIONS);
        await Deno.symlink(self, path("self-link.db"));
        const before = await readSqlite(self);
        const p = uniquePrefix();
        // --dry-run on the servers: before these checks existed, the copies ran.
        const cases: [string[], RegExp, { cwd?: string }?][] = [
          [
            ["copy", `sqlite:${self}`, `sqlite:${dir}/./self.db`],
            /FROM and TO are the same storage/,
          ],
          [["copy", "sqlite:self.db", "sqlite:./self.db"], /same storage/, { cwd: dir }],
          [
            ["copy", "sqlite:self.db", "sqlite:file:self.db"],
            /file: URIs are not taken here; write the path itself, e\.g\. sqlite:self\.db/,
            { cwd: dir },
          ],
          [["copy", `sqlite:${self}`, `sqlite:${path("self-link.db")}`], /same storage/],
          [["copy", `sqlite:${self}`, `sqlite:${self}?table=SESSIONS`], /same storage/],
          [[
            "copy",
            `sqlite:${self}?table=s`,
            `sqlite:${dir}/../${dir.split("/").pop()}/self.db?table=S`,
          ], /same storage/],
          [
            ["copy", "redis://127.0.0.1:6379", "redis://localhost/0?prefix=session:", "--dry-run"],
            /same storage/,
          ],
          [
            [
              "copy",
              `redis://127.0.0.1?prefix=${p}`,
              `redis://[::1]:6379?prefix=${p}`,
              "--dry-run",
            ],
            /same storage/,
          ],
          [
            [
              "copy",
              `redis://127.0.0.1:6379?prefix=${p}`,
              `redis://localhost:6379?prefix=${p}v2:`,
              "--dry-run",
            ],
            /same Redis server whose key prefixes overlap \(".*v2:" starts with ".*"\): FROM's listing would take in the sessions the copy writes; use a prefix for TO that neither starts with FROM's nor is the start of it \(such as \?prefix=\S+\), or copy into another database/,
          ],
          [
            [
              "copy",
              `redis://127.0.0.1:6379?prefix=${p}v2:`,
              `redis://127.0.0.1:6379/0?prefix=${p}`,
              "--dry-run",
            ],
            /key prefixes overlap .*: FROM's sessions lie inside TO's namespace/,
          ],
          [
            [
              "copy",
              "redis://127.0.0.1:6379?prefix=",
              `redis://127.0.0.1?prefix=${p}`,
              "--dry-run",
            ],
            /the prefix "" takes in every key of the database, so copy into another database/,
          ],
          [[
            "copy",
            "postgres://postgres@127.0.0.1/test",
            "postgresql://postgres@localhost:5432/test?table=sessions",
            "--dry-run",
          ], /same storage/],
          [[
            "copy",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@localhost",
            "--dry-run",
          ], /same storage/],
          [[
            "copy",
            "postgres://postgres@127.0.0.1/test?schema=public",
            "postgres://postgres@localhost/test",
            "--dry-run",
          ], /same storage/],
          [[
            "copy",
            "mysql://root@127.0.0.1/test",
            "mariadb://root@localhost:3306/test",
            "--dry-run",
          ], /same storage/],
        ];
        const runs = await Promise.all(
          cases.map(([args, , options]) => cli([...args, "--overwrite"], options)),
        );
        for (const [i, run] of runs.entries()) oneLine(run, 2, cases[i][1]);
        assert.deepEqual(await readSqlite(self), before);
        // Another table of the same file, another Redis database: not the same storage.
        ok(await cli(["copy", `sqlite:${self}`, `sqlite:${self}?table=other`, "--dry-run"]));
        const otherDb = await cli(
          [
            "copy",
            `redis://127.0.0.1?prefix=${p}`,
            `redis://127.0.0.1/1?prefix=${p}v2:`,
            "--dry-run",
          ],
        );
        assert.notEqual(otherDb.code, 2, otherDb.stderr);
      },
    );

    await t.step("a password in a URL is never printed", async () => {
      const run = await cli(["list", "ftp://me:s3cret@example.com/"]);
      oneLine(run, 2, /ftp:\/\/me:\*\*\*@example\.com/);
      assert.equal(run.stderr.includes("s3cret"), false);
    });
  },
});

Deno.test({
  name: "cli: every command on SQLite files",
  sanitizeResources: false,
  fn: async (t) => {
    const src = path("src.db");
    seedSqlite(src, SESSIONS);
    const srcUrl = `sqlite:${src}`;

    await t.step("list, count, get: data on stdout, nothing on stderr", async () => {
      const [list, listed, count, counted, get, missing] = await Promise.all([
        cli(["list", srcUrl]),
        cli(["list", srcUrl, "--prefix", "user:"]),
        cli(["count", srcUrl]),
        cli(["count", "--prefix=user:", srcUrl]),
        cli(["get", srcUrl, "user:2"]),
        cli(["get", srcUrl, "user:404"]),
      ]);
      assert.deepEqual(ok(list).stdout.split("\n").sort(), ["", "chat:-100", "user:1", "user:2"]);
      assert.equal(list.stderr, "");
      assert.equal(ok(listed).stdout, "user:1\nuser:2\n");
      assert.equal(ok(count).stdout, "3\n");
      assert.equal(count.stderr, "");
      assert.equal(ok(counted).stdout, "2\n");
      assert.deepEqual(JSON.parse(ok(get).stdout), SESSIONS["user:2"]);
      assert.equal(get.stderr, "");
      oneLine(missing, 5, /no session under "user:404" in sqlite:/);
    });

    await t.step("delete: --dry-run changes nothing; a missing key is exit 5", async () => {
      const file = path("delete.db");
      seedSqlite(file, SESSIONS);
      const url = `sqlite:${file}`;
      const dry = ok(await cli(["delete", url, "user:1", "--dry-run"]));
      assert.match(
        dry.stderr,
        /^dry run: would delete "user:1" from sqlite:.*; nothing deleted\n$/,
      );
      assert.equal(dry.stdout, "");
      assert.deepEqual(Object.keys(await readSqlite(file)).sort(), [
        "chat:-100",
        "user:1",
        "user:2",
      ]);
      const done = ok(await cli(["delete", url, "user:1"]));
      assert.match(done.stderr, /^deleted "user:1" from sqlite:/);
      assert.deepEqual(Object.keys(await readSqlite(file)).sort(), ["chat:-100", "user:2"]);
      oneLine(await cli(["delete", url, "user:1"]), 5, /no session under "user:1"/);
      // A key starting with "-" after --.
      oneLine(await cli(["get", url, "--", "-1"]), 5, /no session under "-1"/);
    });

    await t.step(
      "copy: into a new file, refused into a full one, resumed, overwritten",
      async () => {
        const dst = path("copy.db");
        const dstUrl = `sqlite:${dst}`;
        // A dry run into a file that does not exist creates nothing.
        const dry = ok(await cli(["copy", srcUrl, dstUrl, "--dry-run"]));
        assert.match(dry.stderr, /dry run: 3 sessions would be copied .*nothing was written/);
        assert.match(dry.stderr, /does not exist yet/);
        assert.equal(await exists(dst), false);

        const first = ok(await cli(["copy", srcUrl, dstUrl, "--prefix", "user:"]));
        assert.match(first.stderr, /^copying: /m); // a plain progress line: stderr is no terminal
        assert.match(first.stderr, /^copied 2 sessions from sqlite:\S+ to sqlite:\S+ in \d+s\n$/m);
        assert.equal(first.stdout, "");
        assert.deepEqual(await readSqlite(dst), {
          "user:1": SESSIONS["user:1"],
          "user:2": SESSIONS["user:2"],
        });

        // The target holds user:*: copying user:* again is refused, chat:* is not.
        oneLine(
          await cli(["copy", srcUrl, dstUrl, "--prefix", "user:"]),
          4,
          /already holds sessions with keys starting with "user:" \(such as "user:1"\); pass --skip-existing .* or --overwrite/,
        );
        oneLine(await cli(["copy", srcUrl, dstUrl]), 4, /already holds sessions \(such as/);
        const dryFull = ok(await cli(["copy", srcUrl, dstUrl, "--dry-run", "--skip-existing"]));
        assert.match(
          dryFull.stderr,
          /1 session would be copied .*, 2 skipped \(the target holds them\)/,
        );

        const rest = ok(await cli(["copy", srcUrl, dstUrl, "--skip-existing", "--no-progress"]));
        assert.equal(
          rest.stderr.replace(/ in \d+s/, ""),
          `copied 1 session from ${srcUrl} to ${dstUrl} (2 skipped)\n`,
        );
        assert.deepEqual(await readSqlite(dst), SESSIONS);

        // --overwrite replaces what the target holds.
        seedSqlite(src, { "user:1": { count: 100 } });
        const over = ok(await cli(["copy", srcUrl, dstUrl, "--overwrite", "--no-progress"]));
        assert.match(over.stderr, /^copied 3 sessions /);
        assert.deepEqual((await readSqlite(dst))["user:1"], { count: 100 });
        seedSqlite(src, { "user:1": SESSIONS["user:1"] });

        // Another table, by --table and by ?table=.
        ok(await cli(["copy", srcUrl, `${dstUrl}?table=other`, "--no-progress"]));
        assert.deepEqual(await readSqlite(dst, "other"), SESSIONS);
        assert.equal(ok(await cli(["count", dstUrl, "--table", "other"])).stdout, "3\n");
      },
    );

    await t.step("export and import: JSON Lines files, stdout and stdin", async () => {
      const file = path("backup.jsonl");
      const exported = ok(await cli(["export", srcUrl, file]));
      assert.match(exported.stderr, /exported 3 sessions from sqlite:\S+ to \S+backup\.jsonl/);
      const lines = (await Deno.readTextFile(file)).trimEnd().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(Object.fromEntries(lines.map((l) => [l.key, l.value])), SESSIONS);
      // No temporary file is left next to it.
      assert.deepEqual([...Deno.readDirSync(dir)].filter((e) => e.name.includes("partial")), []);
      oneLine(await cli(["export", srcUrl, file]), 4, /backup\.jsonl exists; pass --overwrite/);
      ok(await cli(["export", srcUrl, file, "--overwrite", "--prefix", "chat:"]));
      assert.equal((await Deno.readTextFile(file)).trimEnd().split("\n").length, 1);
      // A directory is no file to replace: exit 3, and nothing made next to it.
      const folder = path("a-folder");
      await Deno.mkdir(folder);
      oneLine(
        await cli(["export", srcUrl, folder, "--overwrite"]),
        3,
        /cannot write .*a-folder: it is a directory/,
      );
      assert.deepEqual([...Deno.readDirSync(dir)].filter((e) => e.name.includes("partial")), []);

      const piped = ok(await cli(["export", srcUrl, "-", "--no-progress"]));
      assert.equal(piped.stdout.trimEnd().split("\n").length, 3);
      assert.match(piped.stderr, /^exported 3 sessions from sqlite:\S+ to stdout in \d+s\n$/);

      const restored = path("restored.db");
      const imported = ok(
        await cli(["import", "-", `sqlite:${restored}`], { stdin: piped.stdout }),
      );
      assert.match(imported.stderr, /imported 3 sessions from stdin into sqlite:/);
      assert.deepEqual(await readSqlite(restored), SESSIONS);
      oneLine(
        await cli(["import", "-", `sqlite:${restored}`], { stdin: piped.stdout }),
        4,
        /already holds sessions/,
      );
      const again = ok(
        await cli(["import", "-", `sqlite:${restored}`, "--skip-existing"], {
          stdin: piped.stdout,
        }),
      );
      assert.match(again.stderr, /imported 0 sessions .*\(3 skipped\)/);

      // A file with a broken line: the rest is imported, the line reported, exit 1.
      const broken = path("broken.jsonl");
      await Deno.writeTextFile(
        broken,
        '{"key":"a","value":{"n":1}}\n{"key":"b","value":\n{"key":"c","value":{"n":3}}\n',
      );
      const bad = await cli(["import", broken, `sqlite:${path("partly.db")}`, "--no-progress"]);
      assert.equal(bad.code, 1, bad.stderr);
      // The line number is said once: "line 2 is not valid JSON", not "line 2: line 2 is ...".
      assert.match(bad.stderr, /imported 2 sessions .*\(1 failed\)\n {2}line 2 is not valid JSON/);
      assert.deepEqual(await readSqlite(path("partly.db")), { a: { n: 1 }, c: { n: 3 } });

      // An integer a number cannot hold exactly (a 64-bit id from another language) fails its
      // line, naming it, instead of being stored rounded.
      const big = path("big-int.jsonl");
      await Deno.writeTextFile(
        big,
        '{"key":"a","value":{"id":12345678901234567890123}}\n' +
          '{"key":"b","value":{"id":9007199254740993}}\n' +
          '{"key":"c","value":{"id":9007199254740992,"text":"12345678901234567890123"}}\n',
      );
      const rounded = await cli(["import", big, `sqlite:${path("big-int.db")}`, "--no-progress"]);
      assert.equal(rounded.code, 1, rounded.stderr);
      assert.match(
        rounded.stderr,
        /imported 1 session .*\(2 failed\)\n {2}line 1 \(key "a"\) has the integer 12345678901234567890123, which a JavaScript number cannot keep as written .*\n {2}line 2 \(key "b"\) has the integer 9007199254740993,/,
      );
      assert.deepEqual(await readSqlite(path("big-int.db")), {
        c: { id: 9007199254740992, text: "12345678901234567890123" },
      });

      // One key on 50 lines: the dry run and the run count the same (it said "50 would be
      // imported"); the first line wins, with --overwrite the last.
      const dup = path("dup.jsonl");
      await Deno.writeTextFile(
        dup,
        Array.from({ length: 50 }, (_, i) => `{"key":"k","value":{"line":${i + 1}}}\n`).join(""),
      );
      const dupDb = `sqlite:${path("dup.db")}`;
      const dry = ok(await cli(["import", dup, dupDb, "--dry-run", "--batch-size", "7"]));
      assert.match(
        dry.stderr,
        /dry run: 1 session would be imported .*, 49 skipped \(the target holds them, or their key is on another line too\)/,
      );
      const real = ok(await cli(["import", dup, dupDb, "--batch-size", "7", "--no-progress"]));
      assert.match(real.stderr, /^imported 1 session .* \(49 skipped\)\n$/);
      assert.deepEqual(await readSqlite(path("dup.db")), { k: { line: 1 } });
      ok(await cli(["import", dup, dupDb, "--overwrite", "--no-progress"]));
      assert.deepEqual(await readSqlite(path("dup.db")), { k: { line: 50 } });
      oneLine(
        await cli(["import", path("nope.jsonl"), `sqlite:${path("x.db")}`]),
        3,
        /cannot read \S+nope\.jsonl: no such file/,
      );
      assert.equal(await exists(path("x.db")), false);
    });

    await t.step("a source that does not exist: one line, exit 3, nothing created", async () => {
      const missing = path("missing.db");
      oneLine(await cli(["list", `sqlite:${missing}`]), 3, /no such file/);
      oneLine(
        await cli(["copy", `sqlite:${missing}`, `sqlite:${path("y.db")}`]),
        3,
        /cannot open sqlite:\S+missing\.db: no such file/,
      );
      assert.equal(await exists(missing), false);
      assert.equal(await exists(path("y.db")), false);
      oneLine(
        await cli(["count", `${srcUrl}?table=nope`]),
        3,
        /it has no table "nope" \(its tables: sessions, sessions_leases\); name the table with --table/,
      );
      await Deno.writeTextFile(path("text.db"), "this is no database, just text of some length\n");
      oneLine(await cli(["count", `sqlite:${path("text.db")}`]), 3, /not a database/);
    });
  },
});

Deno.test({
  name: "cli: Deno KV files",
  sanitizeResources: false,
  fn: async (t) => {
    const src = path("kv-src.db");
    seedSqlite(src, SESSIONS);
    const kvFile = path("sessions.kv");

    await t.step("copy into KV, then list, count and get", async () => {
      const copied = ok(await cli(["copy", `sqlite:${src}`, `kv:${kvFile}?prefix=bot,sessions`]));
      assert.match(copied.stderr, /copied 3 sessions/);
      const kv = await Deno.openKv(kvFile);
      try {
        const storage = new DenoKvStorage(kv, { prefix: ["bot", "sessions"] });
        for (const [key, value] of Object.entries(SESSIONS)) {
          assert.deepEqual(await storage.read(key), value);
        }
      } finally {
        kv.close();
      }
      const url = `kv:${kvFile}?prefix=bot,sessions`;
      const [count, list, get, other] = await Promise.all([
        cli(["count", url]),
        cli(["list", url, "--prefix", "chat:"]),
        cli(["get", url, "chat:-100"]),
        cli(["count", `kv:${kvFile}`]), // the default prefix ["sessions"] holds none
      ]);
      assert.equal(ok(count).stdout, "3\n");
      assert.equal(ok(list).stdout, "chat:-100\n");
      assert.deepEqual(JSON.parse(ok(get).stdout), SESSIONS["chat:-100"]);
      assert.equal(ok(other).stdout, "0\n");
    });

    await t.step("nested KV prefixes of one file are refused: exit 2", async () => {
      for (const [a, b] of [["bot", "bot,s"], ["bot,s,x", "bot"], ["sessions", "sessions,v2"]]) {
        oneLine(
          await cli(["copy", `kv:${kvFile}?prefix=${a}`, `kv:${kvFile}?prefix=${b}`, "--dry-run"]),
          2,
          /namespaces of the same Deno KV database whose key prefixes are nested/,
        );
      }
      // Side by side is fine.
      ok(await cli(["copy", `kv:${kvFile}?prefix=bot`, `kv:${kvFile}?prefix=bot2`, "--dry-run"]));
    });

    await t.step("a KV file that does not exist, and KV not enabled", async () => {
      oneLine(await cli(["count", `kv:${path("none.kv")}`]), 3, /no such file/);
      assert.equal(await exists(path("none.kv")), false);
      // Outside this project's deno.json (which enables KV), without --unstable-kv.
      oneLine(
        await cli(["count", `kv:${kvFile}`], { denoFlags: ["--no-config"], cwd: dir }),
        3,
        /Deno KV is not enabled; run deno with --unstable-kv/,
      );
    });
  },
});

redisTest("cli: Redis", async (t) => {
  const prefix = uniquePrefix();
  const admin = await openAdmin();
  const url = `${REDIS_URL}?prefix=${encodeURIComponent(prefix)}`;
  const src = path("redis-src.db");
  seedSqlite(src, SESSIONS);
  try {
    await t.step("copy into Redis under a key prefix, then read it back", async () => {
      ok(await cli(["copy", `sqlite:${src}`, url]));
      const storage = new RedisStorage(admin, { prefix });
      for (const [key, value] of Object.entries(SESSIONS)) {
        assert.deepEqual(await storage.read(key), value);
      }
      const [count, list, get] = await Promise.all([
        cli(["count", url]),
        cli(["list", url]),
        cli(["get", url, "user:1"]),
      ]);
      assert.equal(ok(count).stdout, "3\n");
      assert.deepEqual(ok(list).stdout.trimEnd().split("\n").sort(), Object.keys(SESSIONS).sort());
      assert.deepEqual(JSON.parse(ok(get).stdout), SESSIONS["user:1"]);
      oneLine(await cli(["copy", `sqlite:${src}`, url]), 4, /already holds sessions/);
      // And back out of Redis.
      const back = path("from-redis.db");
      ok(await cli(["copy", url, `sqlite:${back}`]));
      assert.deepEqual(await readSqlite(back), SESSIONS);
      ok(await cli(["delete", url, "user:1"]));
      assert.equal(await storage.read("user:1"), undefined);
    });

    await t.step("an unreachable server: one line, exit 3", async () => {
      const [list, copy] = await Promise.all([
        cli(["list", "redis://127.0.0.1:1"]),
        cli(["copy", `sqlite:${src}`, "redis://127.0.0.1:1"]),
      ]);
      oneLine(list, 3, /cannot open redis:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
      oneLine(copy, 3, /cannot open redis:\/\/127\.0\.0\.1:1: /);
    });
  } finally {
    await deleteUnder(admin, prefix);
    await admin.close();
  }
});

pgEnv.whenReachable("cli: PostgreSQL", () => {
  Deno.test({
    name: "cli: PostgreSQL",
    sanitizeResources: false,
    fn: async (t) => {
      const table = `${pgEnv.RUN}_cli`;
      const url = `${pgEnv.DATABASE_URL}?table=${table}`;
      const src = path("pg-src.db");
      seedSqlite(src, SESSIONS);
      const db = await pgEnv.admin();
      try {
        await t.step("a table that does not exist is never created by reading", async () => {
          oneLine(await cli(["count", url]), 3, new RegExp(`it has no table "${table}"`));
          assert.equal(await pgEnv.tableExists(db, table), false);
          // Nor by a dry run into it.
          const dry = ok(await cli(["copy", `sqlite:${src}`, url, "--dry-run"]));
          assert.match(dry.stderr, /3 sessions would be copied .*does not exist yet/);
          assert.equal(await pgEnv.tableExists(db, table), false);
        });

        await t.step("copy creates the table; count, list, get, delete; refusal", async () => {
          const copied = ok(await cli(["copy", `sqlite:${src}`, url]));
          assert.match(copied.stderr, /copied 3 sessions from sqlite:\S+ to postgres:/);
          const storage = new PostgresStorage(db, { table });
          for (const [key, value] of Object.entries(SESSIONS)) {
            assert.deepEqual(await storage.read(key), value);
          }
          const [count, list, get] = await Promise.all([
            cli(["count", url, "--prefix", "user:"]),
            cli(["list", pgEnv.DATABASE_URL, "--table", table]),
            cli(["get", url, "chat:-100"]),
          ]);
          assert.equal(ok(count).stdout, "2\n");
          assert.deepEqual(
            ok(list).stdout.trimEnd().split("\n").sort(),
            Object.keys(SESSIONS).sort(),
          );
          assert.deepEqual(JSON.parse(ok(get).stdout), SESSIONS["chat:-100"]);
          oneLine(await cli(["copy", `sqlite:${src}`, url]), 4, /already holds sessions/);
          ok(await cli(["delete", url, "user:2"]));
          assert.equal(await storage.read("user:2"), undefined);
        });

        await t.step("an unreachable server: one line, exit 3", async () => {
          oneLine(
            await cli(["count", "postgres://postgres@127.0.0.1:1/test"]),
            3,
            /cannot open postgres:\/\/postgres@127\.0\.0\.1:1\/test: .*ECONNREFUSED/,
          );
        });
      } finally {
        await db.query(`DROP TABLE IF EXISTS ${pgEnv.id(table)}, ${pgEnv.id(`${table}_leases`)}`);
        await db.query(
          `DROP FUNCTION IF EXISTS ${pgEnv.id(`${table}_lease_read`)}(text, text, float8)`,
        );
        await db.query(`DROP FUNCTION IF EXISTS ${pgEnv.id(`${table}_save_release`)}`);
        await db.end();
      }
    },
  });
});

myEnv.whenReachable("cli: MySQL/MariaDB", () => {
  Deno.test({
    name: "cli: MySQL/MariaDB",
    sanitizeResources: false,
    fn: async () => {
      const table = `${myEnv.RUN}_cli`;
      const src = path("my-src.db");
      seedSqlite(src, SESSIONS);
      const pool = myEnv.mysql.createPool(myEnv.MYSQL_URL);
      try {
        // --table would name the table of the SQLite source too: ?table= names this one only.
        ok(await cli(["copy", `sqlite:${src}`, `${myEnv.MYSQL_URL}?table=${table}`]));
        const storage = new MysqlStorage(pool, { table });
        for (const [key, value] of Object.entries(SESSIONS)) {
          assert.deepEqual(await storage.read(key), value);
        }
        assert.equal(ok(await cli(["count", `${myEnv.MYSQL_URL}?table=${table}`])).stdout, "3\n");
        oneLine(
          await cli(["count", "mysql://root@127.0.0.1:1/test"]),
          3,
          /cannot open mysql:\/\/root@127\.0\.0\.1:1\/test: .*ECONNREFUSED/,
        );
      } finally {
        await pool.query(`DROP TABLE IF EXISTS \`${table}\`, \`${table}_leases\``);
        await pool.end();
      }
    },
  });
});

Deno.test({
  name: "cli: an interrupted copy of 20,000 sessions, resumed",
  sanitizeResources: false,
  fn: async () => {
    const total = 20_000;
    const src = path("big-src.db");
    const dst = path("big-dst.db");
    const sessions: Record<string, unknown> = {};
    for (let i = 0; i < total; i++) sessions[`user:${i}`] = { i, text: `session ${i}` };
    seedSqlite(src, sessions);

    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "copy", `sqlite:${src}`, `sqlite:${dst}`],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdout = new Response(child.stdout).text();
    // Read stderr as it comes; send SIGINT at the first progress line.
    let stderr = "";
    let signalled = false;
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      stderr += decoder.decode(chunk, { stream: true });
      // The first line waits for the total: the count alongside takes turns with the copy (it
      // no longer holds the copy up until it has counted every key).
      if (!signalled && /^copying: [\d,]+\/20,000 sessions/m.test(stderr)) {
        child.kill("SIGINT");
        signalled = true;
      }
    }
    const { code } = await child.status;
    assert.equal(signalled, true, stderr);
    assert.equal(code, 130, stderr);
    assert.equal(await stdout, "");
    const match =
      /^interrupted: ([\d,]+) sessions copied from sqlite:\S+ to sqlite:\S+, in \d+s\. To resume, run the same copy again with --skip-existing/m
        .exec(stderr);
    assert.ok(match, stderr);
    assert.match(stderr, /stopping after the batch in flight/);
    const copied = Number(match[1].replaceAll(",", ""));
    const first = await readSqlite(dst);
    assert.equal(Object.keys(first).length, copied, "the count printed is what was written");
    assert.ok(copied > 0 && copied < total, `copied ${copied}`);

    const resumed = ok(await cli(["copy", `sqlite:${src}`, `sqlite:${dst}`, "--skip-existing"]));
    assert.match(
      resumed.stderr,
      new RegExp(
        `^copied ${(total - copied).toLocaleString("en-US")} sessions .* \\(${
          copied.toLocaleString("en-US")
        } skipped\\)\\n$`,
        "m",
      ),
    );
    assert.deepEqual(await readSqlite(dst), sessions);
  },
});

Deno.test({
  name: "cli: an export stopped by Ctrl-C, or by its reader going away",
  sanitizeResources: false,
  fn: async (t) => {
    const total = 20_000;
    const src = path("export-src.db");
    const sessions: Record<string, unknown> = {};
    for (let i = 0; i < total; i++) sessions[`user:${i}`] = { i, text: `session ${i}` };
    seedSqlite(src, sessions);

    /** Runs `export`, sending SIGINT at its first progress line; its stderr and status. */
    const interrupted = async (file: string, extra: string[] = []) => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, "export", `sqlite:${src}`, file, ...extra],
        cwd: ROOT,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      let stderr = "";
      let signalled = false;
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        stderr += decoder.decode(chunk, { stream: true });
        if (!signalled && /^exporting: /m.test(stderr)) {
          child.kill("SIGINT");
          signalled = true;
        }
      }
      return { code: (await child.status).code, stderr };
    };

    await t.step(
      "Ctrl-C: one line says the file was not written, and no file is left",
      async () => {
        const file = path("stopped.jsonl");
        const run = await interrupted(file);
        assert.equal(run.code, 130, run.stderr);
        const line = run.stderr.trimEnd().split("\n").at(-1)!;
        // It used to say "200 sessions exported ... to FILE ... Nothing was written to FILE".
        assert.match(
          line,
          /^interrupted after \d+s: [\d,]+ sessions of sqlite:\S+ had been read; \S+stopped\.jsonl was not written \(there is no such file: an export writes its file only once it is complete\)\. Run the export again\.$/,
        );
        assert.doesNotMatch(line, /exported/);
        assert.equal(await exists(file), false);
        assert.deepEqual([...Deno.readDirSync(dir)].filter((e) => e.name.includes("partial")), []);
      },
    );

    await t.step(
      "Ctrl-C with --overwrite: the old file is kept, and the line says so",
      async () => {
        const file = path("kept.jsonl");
        await Deno.writeTextFile(file, "old backup\n");
        const run = await interrupted(file, ["--overwrite"]);
        assert.equal(run.code, 130, run.stderr);
        assert.match(
          run.stderr,
          /\S+kept\.jsonl was not replaced \(the one there is as it was: an export writes its file only once it is complete\)/,
        );
        assert.equal(await Deno.readTextFile(file), "old backup\n");
      },
    );

    await t.step("export - whose reader goes away: exit 0, and a line that says so", async () => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", CLI, "export", `sqlite:${src}`, "-"],
        cwd: ROOT,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      const reader = child.stdout.getReader();
      const first = await reader.read();
      assert.equal(first.done, false);
      await reader.cancel(); // as `| head -c 10` does
      const { code } = await child.status;
      const text = await stderr;
      assert.equal(code, 0, text);
      // The progress line before it ("exporting: 100/20,000 ... left") is explained.
      assert.match(
        text,
        /^export stopped after [\d,]+ sessions?: the reader of stdout went away\n$/m,
      );
      assert.doesNotMatch(text, /\bat .*:\d+:\d+|Uncaught|Broken pipe/);
    });
  },
});

Deno.test("cli: the progress bar of a terminal, and plain lines elsewhere", () => {
  // A terminal cannot be had in CI, so the display is driven directly, with a clock of its own.
  let now = 0;
  let written = "";
  const options = { write: (text: string) => void (written += text), now: () => now };
  let columns = 80;
  const bar = new Progress({ verb: "copying", mode: "bar", columns: () => columns, ...options });
  try {
    bar.update({ listed: 0, copied: 0, skipped: 0, failed: 0 });
    now = 2000;
    bar.update({ listed: 4000, copied: 3000, skipped: 1000, failed: 0 });
    bar.draw();
    // No total yet: the count and the rate, no bar, no time left.
    assert.equal(written, "\rcopying 4,000 2,000/s, 1,000 skipped\x1b[K");
    written = "";
    bar.total = 20_000;
    bar.draw();
    // 80 columns: the bar takes what the figures leave (21 of them, a fifth full).
    const line = written;
    assert.equal(
      line,
      `\rcopying ${"█".repeat(4)}${"░".repeat(17)} 4,000/20,000 20% 2,000/s 8s left, ` +
        "1,000 skipped\x1b[K",
    );
    assert.ok(line.length - "\r\x1b[K".length <= 79, "fits the terminal");
    // A wide terminal: 40 columns of bar at most.
    columns = 200;
    written = "";
    bar.draw();
    assert.match(written, /^\rcopying █{8}░{32} 4,000\/20,000 20% /);
    written = "";
    bar.stop();
    assert.equal(written, "\r\x1b[K", "stop() clears the line");
  } finally {
    bar.stop();
  }
  written = "";
  now = 0;
  const lines = new Progress({ verb: "importing", mode: "lines", ...options });
  try {
    lines.fraction = () => 0.25;
    now = 1000;
    lines.update({ listed: 500, copied: 500, skipped: 0, failed: 2 });
    // The first line comes with the first batch; then one per interval.
    assert.equal(written, "importing: 502 sessions (25%), 2 failed, 502/s, 3s left\n");
  } finally {
    lines.stop();
  }
});
