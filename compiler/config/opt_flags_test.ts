import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { assertThrows } from "../../tests/assert.ts";
import { OPT_PRESETS, parseOptFlags, updateForTarget } from "./opt_flags.ts";
import { CPU_TARGET, GENERIC_WEBGPU } from "../target.ts";

Deno.test("parseOptFlags() reads presets and k=v on top of O2", () => {
  assertEquals(parseOptFlags("O0"), OPT_PRESETS.O0);
  assertEquals(parseOptFlags(undefined), OPT_PRESETS.O2);
  const f = parseOptFlags("fuse_add_norm=0;memory_planning=false");
  assertEquals(f.fuse_add_norm, false);
  assertEquals(f.memory_planning, false);
  assertEquals(f.fuse_gate_up_silu, true);
  assertThrows(() => parseOptFlags("fuse_everything=1"), TypeError, "unknown optimisation flag");
  assertThrows(() => parseOptFlags("fuse_add_norm=yes"), TypeError, "0/1");
});

Deno.test("updateForTarget() switches shader_f16 off where it does not apply", () => {
  assertEquals(updateForTarget(OPT_PRESETS.O2, CPU_TARGET).shader_f16, false);
  assertEquals(updateForTarget(OPT_PRESETS.O2, GENERIC_WEBGPU).shader_f16, false);
  assertEquals(
    updateForTarget(OPT_PRESETS.O2, { ...GENERIC_WEBGPU, features: ["shader-f16"] }).shader_f16,
    true,
  );
});
