/**
 * SqliteStorage on Node.js with `better-sqlite3@12`, from the npm tarball
 * `deno pack` builds of this package (version 13 of better-sqlite3 crashes
 * Node 20 with a segmentation fault, so 12 it is).
 *
 * 1. Stages the published files (deno.json's `publish.include`) in a
 *    temporary directory and runs `deno pack` there. Until deno.json exports
 *    `./sqlite`, the staged deno.json gets that one export added (said
 *    loudly); nothing in the repository is changed.
 * 2. Installs the tarball, `grammy`, `better-sqlite3@12` and the type
 *    packages with npm into `.cache/sqlite-node/node-<version>/` (gitignored):
 *    better-sqlite3 compiles SQLite there on the first run (about two
 *    minutes), later runs only replace the tarball.
 * 3. Type-checks a TypeScript file that hands a better-sqlite3 `Database`
 *    to `SqliteStorage` (`tsc --strict` against the tarball's .d.ts files).
 * 4. Runs a Node script: writes, reads, conditional writes and deletes,
 *    listings, leases across two handles, the TTL rules, a handle reading
 *    BigInts, and a grammY bot counting messages, then checks the database
 *    file from Deno through `node:sqlite`.
 *
 * Needs `node` (or NODE) and `npm` on the PATH and the npm registry; skipped
 * loudly without them, failing under CI=true.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SqliteStorage } from "../storages/sqlite.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const NODE = Deno.env.get("NODE") ?? "node";

async function run(cmd: string, args: string[], cwd?: string, env?: Record<string, string>) {
  const out = await new Deno.Command(cmd, { args, cwd, env, stdout: "piped", stderr: "piped" })
    .output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

async function version(cmd: string): Promise<string | undefined> {
  try {
    const out = await run(cmd, ["--version"]);
    return out.code === 0 ? out.stdout.trim() : undefined;
  } catch {
    return undefined;
  }
}

const nodeVersion = await version(NODE);
const npmVersion = await version("npm");
const missing = nodeVersion === undefined ? NODE : npmVersion === undefined ? "npm" : undefined;

/** The script Node runs: `node check.mjs <database file>`. */
const SCRIPT = `
import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { Bot } from "grammy";
import { session } from "@sessionkit/grammy";
import { SqliteStorage } from "@sessionkit/grammy/sqlite";

const path = process.argv[2];
const db = new Database(path);
db.pragma("journal_mode = WAL");
const storage = new SqliteStorage(db, { table: "node sessions", ttl: 60_000 });

await storage.write("a", { n: 1, text: "héllo 🔑" });
assert.deepEqual(await storage.read("a"), { n: 1, text: "héllo 🔑" });
assert.equal(await storage.has("a"), true);
assert.equal(await storage.read("missing"), undefined);

const v1 = await storage.writeIfVersion("b", { n: 1 }, null);
assert.equal(typeof v1, "string");
assert.equal(await storage.writeIfVersion("b", { n: 9 }, null), null);
const v2 = await storage.writeIfVersion("b", { n: 2 }, v1);
assert.equal(typeof v2, "string");
assert.equal(await storage.writeIfVersion("b", { n: 9 }, v1), null);
assert.equal(await storage.deleteIfVersion("b", v1), false);
assert.deepEqual(await storage.readVersioned("b"), { value: { n: 2 }, version: v2 });

const keys = [];
for await (const key of storage.readAllKeys()) keys.push(key);
assert.deepEqual(keys, ["a", "b"]);

// A second handle on the file, as another process would have.
const other = new SqliteStorage(new Database(path), { table: "node sessions", ttl: 60_000 });
assert.equal(await storage.acquireLease("a", "me", 5000), true);
assert.equal(await other.acquireLease("a", "you", 5000), false);
assert.equal(await storage.renewLease("a", "me", 5000), true);
await storage.releaseLease("a", "me");
assert.equal(await other.acquireLease("a", "you", 5000), true);
assert.equal(await other.deleteIfVersion("b", v2), true);
assert.equal(other.purgeExpired(), 0);

// Without a TTL, a read clears the expiry and keeps the version.
const expiry = () => db.prepare('SELECT expires_at FROM "node sessions" WHERE key = ?').get("a");
assert.equal(typeof expiry().expires_at, "number");
const untimed = new SqliteStorage(new Database(path), { table: "node sessions" });
const before = (await untimed.readVersioned("a")).version;
assert.equal(expiry().expires_at, null);
assert.equal((await storage.readVersioned("a")).version, before);

// A handle reading every integer as a BigInt.
const big = new Database(path);
big.defaultSafeIntegers(true);
const bigStorage = new SqliteStorage(big, { table: "node sessions", ttl: 60_000 });
const v3 = await bigStorage.writeIfVersion("c", { n: 3 }, null);
assert.deepEqual(await bigStorage.readVersioned("c"), { value: { n: 3 }, version: v3 });
assert.equal(await bigStorage.deleteIfVersion("c", v3), true);
assert.equal(await bigStorage.acquireLease("c", "x", 1000), true);

// A grammY bot: 5 messages one by one, then 20 at once.
const bot = new Bot("0:test-token", {
  botInfo: {
    id: 1, is_bot: true, first_name: "Test", username: "test_bot", can_join_groups: true,
    can_read_all_group_messages: false, supports_inline_queries: false,
    can_connect_to_business: false, has_main_web_app: false,
  },
});
bot.api.config.use(() => Promise.resolve({ ok: true, result: true }));
bot.use(session({ initial: () => ({ count: 0 }), storage }));
bot.on("message", async (ctx) => {
  await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
  ctx.session.count++;
});
let id = 0;
const update = () => ({
  update_id: ++id,
  message: {
    message_id: id, date: 0, text: "hi",
    chat: { id: 42, type: "private", first_name: "x" },
    from: { id: 42, is_bot: false, first_name: "x" },
  },
});
for (let i = 0; i < 5; i++) await bot.handleUpdate(update());
await Promise.all(Array.from({ length: 20 }, () => bot.handleUpdate(update())));
assert.deepEqual(await other.read("42"), { count: 25 });

const sqlite = db.prepare("SELECT sqlite_version() AS v").get().v;
console.log(\`SQLITE NODE OK \${process.version}, SQLite \${sqlite}\`);
`;

/** Type-checked with tsc: better-sqlite3's Database fits SqliteDatabase. */
const TYPES = `
import Database from "better-sqlite3";
import { session, type SessionFlavor } from "@sessionkit/grammy";
import { type SqliteDatabase, SqliteStorage } from "@sessionkit/grammy/sqlite";
import { Bot, type Context } from "grammy";

const db: SqliteDatabase = new Database(":memory:");
const storage = new SqliteStorage<{ count: number }>(new Database(":memory:"), { ttl: 1000 });
const count: number | undefined = (await storage.read("42"))?.count;
const bot = new Bot<Context & SessionFlavor<{ count: number }>>("0:token");
bot.use(session({ initial: () => ({ count: 0 }), storage }));
bot.on("message", (ctx) => void ctx.session.count++);
export { bot, count, db };
`;

/** Copies the published files to `dir`, adding the `./sqlite` export if deno.json lacks it. */
async function stage(dir: string): Promise<boolean> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
  const added = config.exports["./sqlite"] === undefined;
  if (added) config.exports["./sqlite"] = "./storages/sqlite.ts";
  for (const entry of config.publish.include as string[]) {
    if (entry === "deno.json") continue;
    const copy = await run("cp", ["-r", `${ROOT}/${entry}`, `${dir}/${entry.replace(/\/$/, "")}`]);
    assert.equal(copy.code, 0, copy.stderr);
  }
  await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify(config, null, 2));
  await Deno.copyFile(`${ROOT}/deno.lock`, `${dir}/deno.lock`).catch(() => {});
  return added;
}

function test(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  if (missing === undefined) {
    Deno.test(name, fn);
  } else if (Deno.env.get("CI") === "true") {
    Deno.test(name, () => {
      throw new Error(`${missing} is not installed; CI needs Node 20 and npm.`);
    });
  } else {
    console.error(`\n!!!!!!!! SKIPPING "${name}": ${missing} is not installed. !!!!!!!!\n`);
    Deno.test({ name, ignore: true, fn });
  }
}

test("SqliteStorage on Node with better-sqlite3@12, from the deno pack tarball", async (t) => {
  const major = Number(nodeVersion!.replace(/^v/, "").split(".")[0]);
  assert.ok(major >= 20, `Node 20 or newer needed, found ${nodeVersion}`);
  console.log(`node ${nodeVersion}, npm ${npmVersion}`);
  const tmp = await Deno.makeTempDir({ prefix: "sk-sqlite-node-" });
  const project = `${ROOT}.cache/sqlite-node/node-${nodeVersion}`;
  const tarball = `${project}/sessionkit-${Date.now()}.tgz`;
  try {
    await t.step(
      "deno pack builds a tarball with ./sqlite and no SQLite driver in it",
      async () => {
        const pkg = `${tmp}/package`;
        await Deno.mkdir(pkg);
        if (await stage(pkg)) {
          console.error(
            '!!!!!!!! deno.json has no "./sqlite" export yet: packing a staged copy with ' +
              '"./sqlite": "./storages/sqlite.ts" added !!!!!!!!',
          );
        }
        await Deno.mkdir(project, { recursive: true });
        const pack = await run(
          Deno.execPath(),
          ["pack", "--allow-dirty", "--output", tarball],
          pkg,
          {
            NO_COLOR: "1",
          },
        );
        assert.equal(pack.code, 0, `deno pack failed:\n${pack.stdout}\n${pack.stderr}`);
        const list = await run("tar", ["-tzf", tarball]);
        const files = list.stdout.split("\n");
        for (
          const file of ["storages/sqlite.js", "storages/sqlite.d.ts", "storages/sqlite/driver.js"]
        ) {
          assert.ok(files.includes(`package/${file}`), `the tarball has ${file}`);
        }
        const manifest = JSON.parse(
          (await run("tar", ["-xzOf", tarball, "package/package.json"])).stdout,
        );
        assert.ok(manifest.exports["./sqlite"], "package.json exports ./sqlite");
        const deps = { ...manifest.dependencies, ...manifest.peerDependencies };
        assert.equal(deps["better-sqlite3"], undefined, "better-sqlite3 is not a dependency");
        for (const file of files.filter((f) => /^package\/storages\/sqlite(\/.*)?\.js$/.test(f))) {
          const text = (await run("tar", ["-xzOf", tarball, file])).stdout;
          // JSDoc examples import drivers; the code itself must not.
          assert.doesNotMatch(
            text,
            /^\s*(import|export)\b[^\n]*["'](node:sqlite|better-sqlite3)["']/m,
            file,
          );
          assert.doesNotMatch(
            text,
            /(import|require)\(\s*["'](node:sqlite|better-sqlite3)["']/,
            file,
          );
        }
      },
    );

    await t.step("npm installs it with grammy and better-sqlite3@12", async () => {
      for await (const entry of Deno.readDir(project)) {
        if (/^sessionkit-\d+\.tgz$/.test(entry.name) && `${project}/${entry.name}` !== tarball) {
          await Deno.remove(`${project}/${entry.name}`);
        }
      }
      try {
        await Deno.stat(`${project}/package.json`);
      } catch {
        await Deno.writeTextFile(
          `${project}/package.json`,
          '{ "name": "sessionkit-sqlite-node-check", "private": true, "type": "module" }\n',
        );
      }
      const install = await run("npm", [
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        tarball,
        "grammy@^1.46",
        "better-sqlite3@12",
        "typescript@^5",
        "@types/node@^20",
        "@types/better-sqlite3@^7",
      ], project);
      assert.equal(install.code, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`);
      const installed = JSON.parse(
        await Deno.readTextFile(`${project}/node_modules/better-sqlite3/package.json`),
      );
      assert.match(installed.version, /^12\./);
      console.log(`better-sqlite3 ${installed.version}`);
    });

    await t.step("tsc: a better-sqlite3 Database is a SqliteDatabase", async () => {
      await Deno.writeTextFile(`${project}/types.mts`, TYPES);
      const tsc = await run(NODE, [
        "node_modules/typescript/bin/tsc",
        "--noEmit",
        "--strict",
        "--skipLibCheck",
        "--module",
        "nodenext",
        "--moduleResolution",
        "nodenext",
        "--target",
        "es2022",
        "types.mts",
      ], project);
      assert.equal(tsc.code, 0, `tsc failed:\n${tsc.stdout}\n${tsc.stderr}`);
    });

    await t.step("node: storage operations and a grammY bot over better-sqlite3", async () => {
      await Deno.writeTextFile(`${project}/check.mjs`, SCRIPT);
      const file = `${tmp}/node.sqlite`;
      const node = await run(NODE, ["check.mjs", file], project);
      assert.equal(node.code, 0, `node failed:\n${node.stdout}\n${node.stderr}`);
      assert.match(node.stdout, /SQLITE NODE OK v\d+/);
      console.log(node.stdout.trim());
      // The same file, read from Deno through node:sqlite.
      const db = new DatabaseSync(file);
      try {
        const storage = new SqliteStorage<{ count: number }>(db, { table: "node sessions" });
        assert.deepEqual(storage.read("42"), { count: 25 });
      } finally {
        db.close();
      }
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
    await Deno.remove(tarball).catch(() => {});
  }
});
