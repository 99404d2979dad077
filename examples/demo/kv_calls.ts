/**
 * For CI only: counts what the demo's storages ask of the Deno KV database,
 * one level below `DenoKvStorage`, so `.ci/checks/demo.sh` can compare the
 * reads and writes the demo prints with the calls that really reached KV.
 *
 * With `DEMO_COUNTS_FILE` set, the demo hands its storages a proxy of the
 * `Deno.Kv` handle and appends one line per update to that file:
 *
 *   /count get=2 getMany=0 list=0 commit=2 other=0
 *
 * `get`, `getMany` and `list` are KV's read calls, `commit` counts atomic
 * operations committed (how `DenoKvStorage` writes), `other` any other call
 * (none expected). Without the variable the demo uses the database as it is.
 */

/** The KV calls counted since the last line was written. */
interface Calls {
  get: number;
  getMany: number;
  list: number;
  commit: number;
  other: number;
}

const none = (): Calls => ({ get: 0, getMany: 0, list: 0, commit: 0, other: 0 });

/** A `Deno.Kv` that counts its calls, and the file it reports them to. */
export class KvCallLog {
  /** The database to give the storages: every call on it is counted. */
  readonly kv: Deno.Kv;
  readonly #file: string;
  #calls = none();

  /**
   * The log to `DEMO_COUNTS_FILE` (which it empties), or `undefined` when
   * the variable is not set.
   */
  static fromEnv(kv: Deno.Kv): KvCallLog | undefined {
    const file = Deno.env.get("DEMO_COUNTS_FILE");
    if (!file) return undefined;
    Deno.writeTextFileSync(file, "");
    return new KvCallLog(kv, file);
  }

  private constructor(kv: Deno.Kv, file: string) {
    this.#file = file;
    this.kv = proxy(kv, (name, op) => {
      // An atomic operation counts once, when it is committed.
      if (name === "atomic") return proxy(op as Deno.AtomicOperation, this.#onAtomic);
      if (name !== "close") this.#calls[name in this.#calls ? name as keyof Calls : "other"]++;
    });
  }

  #onAtomic = (name: string): undefined => {
    if (name === "commit") this.#calls.commit++;
  };

  /** Forgets what was counted so far (the listing before the script). */
  reset(): void {
    this.#calls = none();
  }

  /** Appends the calls since the last line as one line for `update`, and starts again. */
  async record(update: string): Promise<void> {
    const counts = Object.entries(this.#calls).map(([name, n]) => `${name}=${n}`).join(" ");
    await Deno.writeTextFile(this.#file, `${update} ${counts}\n`, { append: true });
    this.reset();
  }
}

/**
 * A proxy of `target` that tells `seen` of each method call, by name, with
 * its result; what `seen` returns replaces the result. Chained calls
 * (`op.check(...).set(...)`) stay on the proxy.
 */
function proxy<T extends object>(
  target: T,
  seen: (name: string, result: unknown) => unknown,
): T {
  const wrapped: T = new Proxy(target, {
    get: (obj, prop) => {
      const value = Reflect.get(obj, prop, obj);
      if (typeof value !== "function" || typeof prop !== "string") return value;
      return (...args: unknown[]) => {
        const result = value.apply(obj, args);
        return seen(prop, result) ?? (result === obj ? wrapped : result);
      };
    },
  });
  return wrapped;
}
