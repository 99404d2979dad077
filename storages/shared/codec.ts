/**
 * How the shared layer turns sessions into driver payloads and back.
 * Networked drivers store JSON text ({@link jsonText}); the memory driver
 * keeps validated copies ({@link jsonCopy}), which is cheaper and hands out
 * the same data.
 *
 * @module
 */

import { copySession, deserializeSession, serializeSession } from "../../src/serialization.ts";
import { cloneJson } from "../../src/values.ts";

/** Turns a session into a payload and back. */
export interface PayloadCodec<P> {
  /**
   * The payload to store for `value`; throws a `SessionValueError` if the
   * value does not follow the serialization contract.
   */
  encode(value: unknown, key: string): P;
  /** The session a stored payload holds; throws if the payload is not one. */
  decode(payload: P): unknown;
}

/** Sessions as the JSON text `JSON.stringify` gives (the serialization contract). */
export const jsonText: PayloadCodec<string> = {
  encode: (value, key) => serializeSession(value, key),
  decode: (payload) => deserializeSession(payload),
};

/**
 * Sessions as validated deep copies, as reading their JSON text back would
 * give them; each read gets a fresh copy.
 */
export const jsonCopy: PayloadCodec<unknown> = {
  encode: (value, key) => copySession(value, key),
  decode: (payload) => cloneJson(payload),
};
