/**
 * Getting hold of an error to look at it.
 *
 * @module
 */

/** What `call` throws or rejects with, synchronously or not. */
export async function errorOf(call: () => unknown): Promise<Error> {
  try {
    await call();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected an error, got none");
}
