import {
  deepStrictEqual as assertEquals,
  notDeepStrictEqual,
  ok,
  rejects,
} from "node:assert/strict";
import { createHash } from "node:crypto";
import { TargetError } from "./errors.ts";
import { computeUnitsOf } from "../compiler/target.ts";
import { assertThrows } from "../tests/assert.ts";
import { cpuTarget, detectTarget, LIMIT_KEYS, makeTarget, targetFingerprint } from "./hardware.ts";

const limits = {
  maxComputeWorkgroupSizeX: 1024,
  maxComputeInvocationsPerWorkgroup: 1024,
  maxComputeWorkgroupStorageSize: 32768,
  maxComputeWorkgroupsPerDimension: 65535,
  maxStorageBufferBindingSize: 2 ** 31,
  maxStorageBuffersPerShaderStage: 10,
  minStorageBufferOffsetAlignment: 32,
};
const gpu = {
  backend: "webgpu" as const,
  vendor: "nvidia",
  architecture: "hopper",
  features: ["shader-f16"],
  limits,
};

Deno.test("targetFingerprint() hashes backend, vendor, architecture, Kiln features and limits", () => {
  // Independent reference: the canonical JSON written out by hand.
  const json = '{"architecture":"hopper","backend":"webgpu","features":["shader-f16"],"limits":{' +
    '"maxComputeInvocationsPerWorkgroup":1024,"maxComputeWorkgroupSizeX":1024,' +
    '"maxComputeWorkgroupStorageSize":32768,"maxComputeWorkgroupsPerDimension":65535,' +
    '"maxStorageBufferBindingSize":2147483648,"maxStorageBuffersPerShaderStage":10,' +
    '"minStorageBufferOffsetAlignment":32},"vendor":"nvidia"}';
  assertEquals(targetFingerprint(gpu), createHash("sha256").update(json).digest("hex"));
});

Deno.test("targetFingerprint() ignores the description and features Kiln does not use", () => {
  const a = makeTarget({ ...gpu, description: "driver 1" });
  const b = makeTarget({
    ...gpu,
    description: "driver 2",
    features: ["depth-clip-control", "shader-f16"],
  });
  assertEquals(a.fingerprint, b.fingerprint);
  assertEquals(b.features, ["shader-f16"]);
});

Deno.test("targetFingerprint() changes with each part that changes generated code", () => {
  const base = targetFingerprint(gpu);
  const changes = [
    { backend: "cpu" as const },
    { vendor: "amd" },
    { architecture: "ampere" },
    { features: [] },
    { features: ["shader-f16", "subgroups"] },
    { features: ["shader-f16", "packed_4x8_integer_dot_product"] },
    { computeUnits: 132 },
    ...LIMIT_KEYS.map((k) => ({ limits: { ...limits, [k]: limits[k] * 2 } })),
  ];
  const seen = new Set([base]);
  for (const c of changes) {
    const f = targetFingerprint({ ...gpu, ...c });
    notDeepStrictEqual(f, base, JSON.stringify(c));
    seen.add(f);
  }
  assertEquals(seen.size, changes.length + 1);
});

Deno.test("makeTarget() keeps the WGSL language features and compute units the compiler uses", () => {
  // the q8 decode kernels depend on packed_4x8_integer_dot_product: a JIT target that dropped
  // it would compile them out
  const t = makeTarget({
    ...gpu,
    features: ["packed_4x8_integer_dot_product", "shader-f16"],
    computeUnits: 132,
  });
  assertEquals(t.features, ["packed_4x8_integer_dot_product", "shader-f16"]);
  assertEquals(t.computeUnits, 132);
  assertEquals(
    ["NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H200", "llvmpipe (LLVM 15.0.6)"].map(
      computeUnitsOf,
    ),
    [132, 114, 132, undefined],
  );
  assertThrows(() => makeTarget({ ...gpu, computeUnits: 0 }), TargetError, "computeUnits");
});

Deno.test("makeTarget() rejects a bad backend or a missing limit, naming it", () => {
  ok(
    (() => {
      try {
        makeTarget({
          ...gpu,
          limits: { ...limits, maxStorageBuffersPerShaderStage: undefined as unknown as number },
        });
      } catch (e) {
        return e instanceof TargetError && e.message.includes("maxStorageBuffersPerShaderStage");
      }
    })(),
  );
  ok(
    (() => {
      try {
        makeTarget({ ...gpu, backend: "cuda" as "cpu" });
      } catch (e) {
        return e instanceof TargetError && e.message.includes('"cuda"');
      }
    })(),
  );
});

Deno.test("detectTarget() honours cpu, a JSON description and rejects unknown specs", async () => {
  assertEquals((await detectTarget({ target: "cpu" })).target, cpuTarget());
  const described = await detectTarget({ target: JSON.stringify(gpu) });
  assertEquals([described.target.vendor, described.target.fingerprint], [
    "nvidia",
    targetFingerprint(gpu),
  ]);
  assertEquals(described.adapter, null);
  await rejects(detectTarget({ target: "cuda" }), TargetError);
});

Deno.test("detectTarget() describes the adapter here, or falls back to the CPU with one notice", async () => {
  const notices: string[] = [];
  const { target, adapter } = await detectTarget({ notify: (m) => notices.push(m) });
  const expected = (await navigator.gpu?.requestAdapter()) ?? null;
  if (expected) {
    ok(adapter !== null);
    assertEquals([target.backend, notices], ["webgpu", []]);
    assertEquals(target.vendor, expected.info.vendor);
    assertEquals(target.features.includes("shader-f16"), expected.features.has("shader-f16"));
    assertEquals(
      target.limits.maxStorageBufferBindingSize,
      Math.min(expected.limits.maxStorageBufferBindingSize, expected.limits.maxBufferSize),
    );
  } else {
    assertEquals([target, adapter, notices.length], [cpuTarget(), null, 1]);
    await rejects(detectTarget({ target: "webgpu" }), TargetError);
  }
});
