/**
 * Targets the compiler specialises kernels for. `targetFromAdapter` reads a real adapter;
 * `GENERIC_WEBGPU` uses the WebGPU spec's default limits, so a library compiled for it runs on
 * any adapter (and compiling needs no GPU).
 * @module
 */
import type { TargetInfo, TargetLimits } from "./codegen/contract.ts";

/** The WebGPU specification's default limits. */
export const DEFAULT_WEBGPU_LIMITS: TargetLimits = Object.freeze({
  maxComputeWorkgroupSizeX: 256,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeWorkgroupsPerDimension: 65535,
  maxStorageBufferBindingSize: 134217728,
  maxStorageBuffersPerShaderStage: 8,
  minStorageBufferOffsetAlignment: 256,
});

export const GENERIC_WEBGPU: TargetInfo = Object.freeze({
  backend: "webgpu",
  features: [],
  limits: DEFAULT_WEBGPU_LIMITS,
});

/** The CPU target: plain TypeScript kernels. Limits only bound buffer sizes (ArrayBuffers). */
export const CPU_TARGET: TargetInfo = Object.freeze({
  backend: "cpu",
  features: [],
  limits: { ...DEFAULT_WEBGPU_LIMITS, maxStorageBufferBindingSize: 2 ** 31 - 1 },
});

/** The limits kernels are specialised by (every key of `TargetLimits`). */
export const LIMIT_KEYS = Object.keys(DEFAULT_WEBGPU_LIMITS) as (keyof TargetLimits)[];

const FEATURES = [
  "shader-f16",
  "subgroups",
  "subgroups-f16",
  "timestamp-query",
] as GPUFeatureName[];

/** WGSL language features kernels use (listed with the adapter's features). */
const LANGUAGE_FEATURES = ["packed_4x8_integer_dot_product"];

/** The target of a real adapter: the features Kiln uses and the limits kernels depend on. */
export function targetFromAdapter(adapter: GPUAdapter): TargetInfo {
  const limits = {} as TargetLimits;
  for (const k of LIMIT_KEYS) limits[k] = adapter.limits[k];
  // a binding can be no larger than a buffer
  limits.maxStorageBufferBindingSize = Math.min(
    limits.maxStorageBufferBindingSize,
    adapter.limits.maxBufferSize,
  );
  // not in Deno's GPU typings yet
  const wgslFeatures = (navigator.gpu as { wgslLanguageFeatures?: ReadonlySet<string> })
    .wgslLanguageFeatures;
  return Object.freeze({
    backend: "webgpu" as const,
    features: [
      ...FEATURES.filter((f) => adapter.features.has(f)),
      ...LANGUAGE_FEATURES.filter((f) => wgslFeatures?.has(f)),
    ],
    limits: Object.freeze(limits),
  });
}

/** "cpu" | "webgpu" (generic) | "auto" (the adapter here, else CPU) | a TargetInfo. */
export async function resolveTarget(
  t: TargetInfo | "auto" | "webgpu" | "cpu",
): Promise<TargetInfo> {
  if (typeof t === "object") return t;
  if (t === "cpu") return CPU_TARGET;
  if (t === "webgpu") return GENERIC_WEBGPU;
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  return adapter ? targetFromAdapter(adapter) : CPU_TARGET;
}
