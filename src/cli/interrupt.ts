/**
 * Ctrl-C during a long command: the first SIGINT asks the command to stop
 * after the batch in flight (through an `AbortSignal`), so that nothing is
 * left half-done and the run can be resumed; a second one exits at once
 * with code 130.
 *
 * @module
 */

import { EXIT } from "./exit.ts";

/** A handle on SIGINT while a command runs. */
export interface Interrupt {
  /** Aborted at the first Ctrl-C. */
  readonly signal: AbortSignal;
  /** Stops listening: Ctrl-C ends the process again. */
  dispose(): void;
}

/**
 * Listens for SIGINT until `dispose()`. `onFirst` runs at the first one
 * (to say that the command is stopping).
 *
 * @example
 * ```ts
 * import { catchInterrupt } from "./interrupt.ts";
 *
 * const interrupt = catchInterrupt(() => console.error("stopping after this batch"));
 * // ... pass interrupt.signal to copySessions ...
 * interrupt.dispose();
 * ```
 */
export function catchInterrupt(onFirst: () => void): Interrupt {
  const controller = new AbortController();
  const listener = () => {
    if (controller.signal.aborted) Deno.exit(EXIT.interrupted);
    controller.abort();
    onFirst();
  };
  let listening = true;
  try {
    Deno.addSignalListener("SIGINT", listener);
  } catch {
    listening = false; // a platform without SIGINT: Ctrl-C ends the process as usual
  }
  return {
    signal: controller.signal,
    dispose() {
      if (!listening) return;
      listening = false;
      Deno.removeSignalListener("SIGINT", listener);
    },
  };
}
