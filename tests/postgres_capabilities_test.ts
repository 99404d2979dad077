import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { isConditionalStorage, isLeaseStorage, session, type SessionFlavor } from "../mod.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { admin, collect, DATABASE_URL, dropTables, id, pgTest, RUN } from "./postgres_setup.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";

/** Two storages on one table, each with its own pool, like two bot processes. */
async function twoProcesses(
  table: string,
  fn: (a: PostgresStorage<unknown>, b: PostgresStorage<unknown>) => Promise<void>,
): Promise<void> {
  const a = PostgresStorage.connect<unknown>(DATABASE_URL, { table, ttl: 60_000 });
  const b = PostgresStorage.connect<unknown>(DATABASE_URL, { table, ttl: 60_000 });
  const db = await admin();
  try {
    await fn(a, b);
  } finally {
    await a.close();
    await b.close();
    await dropTables(db, a);
    await db.end();
  }
}

pgTest("PostgresStorage: conditional writes across two processes", async (t) => {
  await twoProcesses(`${RUN}_cas`, async (a, b) => {
    assert.ok(isConditionalStorage(a));

    await t.step("only one of two creators wins", async () => {
      const results = await Promise.all([
        a.writeIfVersion("k", { by: "a" }, null),
        b.writeIfVersion("k", { by: "b" }, null),
      ]);
      assert.equal(results.filter((v) => v !== null).length, 1);
      const winner = results[0] === null ? "b" : "a";
      assert.deepEqual(await a.readVersioned("k"), {
        value: { by: winner },
        version: results.find((v) => v !== null),
      });
    });

    await t.step("a stale version is refused and nothing is written", async () => {
      const seen = await a.readVersioned("k");
      const seenByB = await b.readVersioned("k");
      assert.equal(seen.version, seenByB.version);
      const next = await b.writeIfVersion("k", { by: "b", n: 2 }, seenByB.version);
      assert.ok(next !== null && next !== seen.version);
      assert.equal(await a.writeIfVersion("k", { by: "a", n: 2 }, seen.version), null);
      assert.equal(await a.deleteIfVersion("k", seen.version), false);
      assert.deepEqual(await a.read("k"), { by: "b", n: 2 });
      assert.equal(await a.writeIfVersion("k", 1, null), null, "null means nothing stored");
      assert.equal(await a.writeIfVersion("k", 1, "not a version"), null);
      assert.equal(await a.writeIfVersion("k", 1, "99999999999999999999"), null);
    });

    await t.step(
      "a plain write changes the version; delete then recreate never reuses one",
      async () => {
        const before = (await a.readVersioned("k")).version;
        await b.write("k", { plain: true });
        const after = (await a.readVersioned("k")).version;
        assert.notEqual(after, before);
        assert.equal(await a.deleteIfVersion("k", after), true);
        assert.equal(await a.deleteIfVersion("k", null), true, "nothing stored matches null");
        const again = await b.writeIfVersion("k", { again: true }, null);
        assert.ok(again !== null && again !== after && again !== before);
        assert.equal(await a.writeIfVersion("k", 1, after), null);
        assert.equal(await a.deleteIfVersion("k", null), false);
      },
    );

    await t.step("50 read-modify-write loops from two processes lose no increment", async () => {
      await a.write("counter", { n: 0 });
      const worker = async (s: PostgresStorage<unknown>) => {
        for (let done = 0; done < 25;) {
          const { value, version } = await s.readVersioned("counter");
          const n = (value as { n: number }).n;
          if (await s.writeIfVersion("counter", { n: n + 1 }, version) !== null) done++;
        }
      };
      await Promise.all([worker(a), worker(b)]);
      assert.deepEqual(await b.read("counter"), { n: 50 });
    });
  });
});

pgTest("PostgresStorage: leases across two processes", async (t) => {
  await twoProcesses(`${RUN}_lease`, async (a, b) => {
    assert.ok(isLeaseStorage(a));
    await t.step("one holder at a time, renew and release by the owner only", async () => {
      const got = await Promise.all([
        a.acquireLease("k", "A", 5000),
        b.acquireLease("k", "B", 5000),
      ]);
      assert.equal(got.filter(Boolean).length, 1);
      const [holder, other, hs, os] = got[0]
        ? ["A", "B", a, b] as const
        : ["B", "A", b, a] as const;
      assert.equal(await os.acquireLease("k", other, 5000), false);
      assert.equal(await os.renewLease("k", other, 5000), false);
      await os.releaseLease("k", other); // not theirs: no effect
      assert.equal(await os.acquireLease("k", other, 5000), false);
      assert.equal(await hs.renewLease("k", holder, 5000), true);
      assert.equal(await hs.acquireLease("k", holder, 5000), true, "re-acquiring own lease");
      await hs.releaseLease("k", holder);
      assert.equal(await os.acquireLease("k", other, 5000), true);
      await os.releaseLease("k", other);
    });

    await t.step("an expired lease can be taken over and is lost for its old owner", async () => {
      assert.ok(await a.acquireLease("x", "A", 200));
      assert.equal(await b.acquireLease("x", "B", 5000), false);
      await sleep(300);
      assert.equal(await a.renewLease("x", "A", 5000), false);
      assert.ok(await b.acquireLease("x", "B", 5000));
      await a.releaseLease("x", "A");
      assert.equal(
        await a.acquireLease("x", "A", 5000),
        false,
        "A's release did not free B's lease",
      );
    });

    await t.step("leases live in their own table, never among sessions", async () => {
      assert.deepEqual(await collect(a.readAllKeys()), []);
      const db = await admin();
      try {
        const { rows } = await db.query(`SELECT key, owner FROM ${id(a.leaseTable)} ORDER BY key`);
        assert.deepEqual(rows, [{ key: "x", owner: "B" }]);
      } finally {
        await db.end();
      }
    });

    await t.step("bad lease arguments are refused", async () => {
      await assert.rejects(() => a.acquireLease("k", "A", 0), /positive/);
      await assert.rejects(() => a.acquireLease("k", "A", Infinity), /finite/);
    });
  });
});

pgTest("PostgresStorage: a real Bot stores its sessions in the table", async () => {
  const table = `${RUN}_bot`;
  const storage = PostgresStorage.connect<{ count: number; name: string }>(DATABASE_URL, {
    table,
    ttl: 3_600_000,
  });
  const db = await admin();
  try {
    type C = Context & SessionFlavor<{ count: number; name: string }>;
    const h = createHarness<C>();
    h.bot.use(session({ initial: () => ({ count: 0, name: "" }), storage }));
    h.bot.on("message:text", async (ctx) => {
      ctx.session.count++;
      ctx.session.name = ctx.message.text;
      await ctx.reply(`count ${ctx.session.count}`);
    });
    await h.send(message(7, "hello"));
    await h.send(message(7, "again"));
    await h.send(message(-1009, "group ✓"));
    assert.deepEqual(h.errors, []);
    assert.deepEqual(h.replies(), ["count 1", "count 2", "count 1"]);
    const { rows } = await db.query(
      `SELECT key, value::text AS value, expires_at > now() + interval '59 minutes' AS ttl_set
       FROM ${id(table)} ORDER BY key`,
    );
    assert.deepEqual(rows, [
      { key: "-1009", value: '{"count":1,"name":"group ✓"}', ttl_set: true },
      { key: "7", value: '{"count":2,"name":"again"}', ttl_set: true },
    ]);
  } finally {
    await storage.close();
    await dropTables(db, storage);
    await db.end();
  }
});
