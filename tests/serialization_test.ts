/** The serialization contract. */
import assert from "node:assert/strict";
import { deserializeSession, serializeSession, SessionValueError } from "../mod.ts";
import { copySession } from "../src/serialization.ts";

Deno.test("serialization: JSON data round-trips byte for byte", () => {
  const value = { a: [1, "x", null, true, { b: -0.5 }], "": "", "ü": "🎉" };
  const text = serializeSession(value, "k");
  assert.equal(text, JSON.stringify(value));
  assert.deepEqual(deserializeSession(text), value);
});

Deno.test("serialization: undefined properties are left out, -0 becomes 0", () => {
  assert.equal(serializeSession({ a: undefined, b: 1 }), '{"b":1}');
  assert.equal(serializeSession({ z: -0 }), '{"z":0}');
});

Deno.test("serialization: __proto__ and friends are data, not prototype changes", () => {
  const text = '{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}}}';
  const value = deserializeSession<Record<string, unknown>>(text);
  assert.equal(Object.getPrototypeOf(value), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(serializeSession(value), text);
});

Deno.test("serialization: values JSON cannot hold are refused with the path and a hint", () => {
  const cycle: Record<string, unknown> = {};
  cycle.me = { again: cycle };
  class Point {
    x = 1;
  }
  const cases: [unknown, RegExp][] = [
    [{ f() {} }, /\$\.f is a function/],
    [{ n: 1n }, /\$\.n is a BigInt.*as a string/],
    [{ d: new Date() }, /\$\.d is a Date.*toISOString/],
    [{ m: new Map() }, /\$\.m is a Map/],
    [{ s: new Set() }, /\$\.s is a Set/],
    [{ p: new Point() }, /\$\.p is a Point/],
    [{ x: NaN }, /\$\.x is NaN/],
    [{ x: -Infinity }, /\$\.x is -Infinity/],
    [{ l: [1, undefined] }, /\$\.l\[1\] is undefined inside an array/],
    // deno-lint-ignore no-sparse-arrays
    [{ l: [1, , 3] }, /\$\.l\[1\] is a hole/],
    [cycle, /\$\.me\.again is a reference back/],
    [Symbol("s"), /\$ is a symbol/],
    [undefined, /\$ is undefined/],
  ];
  // copySession is how the memory storage takes values: the same refusals.
  for (const check of [serializeSession, copySession]) {
    for (const [value, pattern] of cases) {
      assert.throws(
        () => check(value, "chat-1"),
        (err: unknown) =>
          err instanceof SessionValueError && err.key === "chat-1" && pattern.test(err.message) &&
          /key "chat-1"/.test(err.message) && /Nothing was written/.test(err.message),
        `${check.name}: ${pattern}`,
      );
    }
  }
});

Deno.test("serialization: copySession gives what reading the text back gives", () => {
  const text = '{"__proto__":{"p":1},"a":[1,{"b":"x"}],"z":0}';
  const values = [
    { a: [1, { b: "x" }], u: undefined, z: -0, [Symbol("s")]: 1 },
    deserializeSession(text),
    "just a string",
    42,
  ];
  for (const value of values) {
    const copy = copySession(value, "k");
    assert.deepEqual(copy, JSON.parse(JSON.stringify(value)));
    assert.equal(JSON.stringify(copy), JSON.stringify(value));
    if (typeof value === "object") {
      assert.notEqual(copy, value);
      assert.equal(Object.getOwnPropertySymbols(copy as object).length, 0);
      assert.ok(Object.is((copy as { z?: number }).z ?? 0, 0), "-0 became 0");
    }
  }
  const proto = copySession(deserializeSession(text)) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(proto), Object.prototype, "__proto__ stays data");
  assert.deepEqual(Object.keys(proto), ["__proto__", "a", "z"]);
});

Deno.test("serialization: shared references are fine and become copies", () => {
  const shared = { n: 1 };
  const back = deserializeSession<{ a: object; b: object }>(
    serializeSession({ a: shared, b: shared }),
  );
  assert.deepEqual(back.a, back.b);
  assert.notEqual(back.a, back.b);
});

Deno.test("a session nested too deeply to check is a SessionValueError, not a stack overflow", () => {
  // Review finding: 5,000 to 200,000 levels gave a bare RangeError naming neither key nor fix.
  let tip: Record<string, unknown> = {};
  const deep = tip;
  for (let i = 0; i < 200_000; i++) {
    const next = {};
    tip.a = next;
    tip = next;
  }
  for (const store of [() => serializeSession(deep, "k"), () => copySession(deep, "k")]) {
    assert.throws(
      store,
      (err: Error) =>
        err instanceof SessionValueError && err.key === "k" &&
        /nested too deeply/.test(err.message),
    );
  }
});
