/**
 * The lease table of PostgresStorage is created when a lease is first used,
 * not with the session table: a bot that never locks never gets one. The
 * first lease calls of fresh storages in two processes at once all work.
 */
import assert from "node:assert/strict";
import { SessionError } from "../mod.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { collect, DATABASE_URL, pgTest, RUN, tableExists, withDb } from "./postgres_setup.ts";

pgTest("PostgresStorage: the lease table is created when a lease is first used", async (t) => {
  await withDb(async (db, pool, storages) => {
    await t.step("sessions alone never create it", async () => {
      const storage = new PostgresStorage<unknown>(pool, { table: `${RUN}_nolease`, ttl: 60_000 });
      storages.push(storage);
      await storage.write("k", 1);
      const { version } = await storage.readVersioned("k");
      await storage.writeIfVersion("k", 2, version);
      assert.equal(await storage.has("k"), true);
      assert.deepEqual(await collect(storage.readAllEntries()), [["k", 2]]);
      await storage.purgeExpired();
      await storage.delete("k");
      assert.ok(await tableExists(db, storage.table));
      assert.equal(await tableExists(db, storage.leaseTable), false, "no lease table yet");
      assert.equal(await storage.acquireLease("k", "me", 1000), true);
      assert.ok(await tableExists(db, storage.leaseTable), "created by the first lease");
      assert.equal(await storage.renewLease("k", "me", 1000), true);
    });

    await t.step("two processes taking the first lease of fresh storages at once", async () => {
      for (let round = 0; round < 3; round++) {
        const table = `${RUN}_firstlease_${round}`;
        const a = PostgresStorage.connect<unknown>(DATABASE_URL, { table });
        const b = PostgresStorage.connect<unknown>(DATABASE_URL, { table });
        storages.push(a, b);
        const [gotA, gotB] = await Promise.all([
          a.acquireLease("k", "A", 5000),
          b.acquireLease("k", "B", 5000),
          a.renewLease("x", "A", 5000),
          b.releaseLease("y", "B"),
          a.acquireLease("z", "A", 5000),
        ]);
        assert.equal([gotA, gotB].filter(Boolean).length, 1, `round ${round}: one holder`);
        const [holder, owner] = gotA ? [a, "A"] : [b, "B"];
        assert.equal(await holder.renewLease("k", owner, 5000), true);
        assert.ok(await tableExists(db, a.leaseTable));
      }
    });

    await t.step("with createTable: false, a missing lease table is explained", async () => {
      const storage = new PostgresStorage(pool, { table: `${RUN}_nolease`, createTable: false });
      const table = `${RUN}_byhand_lease`;
      const byHand = new PostgresStorage(pool, { table, createTable: false });
      storages.push(byHand);
      await assert.rejects(() => byHand.acquireLease("k", "me", 1000), (err: Error) => {
        assert.ok(err instanceof SessionError);
        assert.match(err.message, /_leases" \(or its schema\) does not exist.*createTableSql/s);
        return true;
      });
      assert.equal(await tableExists(db, byHand.leaseTable), false);
      // A lease table that exists is used as it is.
      assert.equal(await storage.acquireLease("other", "me", 1000), true);
    });
  });
});
