import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { canonicalJson } from "./canonical_json.ts";

Deno.test("canonicalJson() sorts keys at every depth and drops undefined members", () => {
  assertEquals(
    canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined }, e: "x" }),
    '{"a":{"d":[3,{"y":2,"z":1}]},"b":1,"e":"x"}',
  );
  assertEquals(canonicalJson([undefined, null, true, -0.5]), "[null,null,true,-0.5]");
});

Deno.test("canonicalJson() rejects values JSON cannot represent, naming where", () => {
  throws(() => canonicalJson({ a: [1, NaN] }), /\$\.a\[1\] is NaN/);
  throws(() => canonicalJson({ f: () => 1 }), /\$\.f is a function/);
  throws(() => canonicalJson({ n: 1n }), /\$\.n is a bigint/);
});
