/**
 * Timers that never keep a process alive, in Deno and in Node.
 *
 * @module
 */

/** Like `setTimeout`, but the timer does not keep the process running. */
export function backgroundTimeout(fn: () => void, ms: number): TimerId {
  const id = setTimeout(fn, ms);
  const deno = (globalThis as { Deno?: { unrefTimer?: (id: unknown) => void } }).Deno;
  if (typeof deno?.unrefTimer === "function") deno.unrefTimer(id);
  else (id as unknown as { unref?: () => void }).unref?.();
  return id;
}

/** What `setTimeout` returns in the running runtime. */
export type TimerId = ReturnType<typeof setTimeout>;

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves once `promise` has settled, or after `ms` ms, whichever comes first. */
export function settledOrTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = backgroundTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    promise.then(done, done);
  });
}
