/**
 * Contended unconditional writes on PostgreSQL all succeed, even when the
 * server refuses some of the connections their pools open (issue 16,
 * "concurrent unconditional writes of one key all succeed"). Writes of one
 * key wait on its row lock, so each pool soon holds all its connections and
 * asks for more; past the server's limit (`max_connections`, or a role's
 * connection limit as here) PostgreSQL answers "too many clients" (53300)
 * before the statement runs, which the storage retries for a while.
 */
import assert from "node:assert/strict";
import { PostgresStorage } from "../storages/postgres.ts";
import { admin, DATABASE_URL, id, pgTest, RUN } from "./postgres_setup.ts";

pgTest("PostgresStorage: writes wait out connections the server refuses", async () => {
  const db = await admin();
  const role = `${RUN}_few`;
  await db.query(`CREATE ROLE ${id(role)} LOGIN CONNECTION LIMIT 3`);
  await db.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${id(role)}`);
  const url = new URL(DATABASE_URL);
  url.username = role;
  const table = `${RUN}_few`;
  // Two processes with pools of 10 over 3 allowed connections.
  const processes = [0, 1].map(() => PostgresStorage.connect<{ i: number }>(url.href, { table }));
  try {
    await processes[0].write("warm", { i: -1 });
    const written = Array.from({ length: 120 }, (_, i) => ({ i }));
    const results = await Promise.allSettled(
      written.map((value, i) => processes[i % 2].write("contended", value)),
    );
    assert.deepEqual(results.filter((r) => r.status === "rejected"), []);
    const stored = await processes[1].read("contended");
    assert.ok(written.some((w) => w.i === stored?.i), "a whole write");
  } finally {
    for (const storage of processes) await storage.close();
    await db.query(`DROP OWNED BY ${id(role)}`);
    await db.query(`DROP ROLE ${id(role)}`);
    await db.end();
  }
});
