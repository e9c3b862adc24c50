/**
 * Targets the compiler specialises kernels for. `targetFromAdapter` reads a real adapter;
 * `GENERIC_WEBGPU` uses the WebGPU spec's default limits, so a library compiled for it runs on
 * any adapter (and compiling needs no GPU).
 * @module
 */
import { PACKED_DOT, type TargetInfo, type TargetLimits } from "./codegen/contract.ts";

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
const LANGUAGE_FEATURES = [PACKED_DOT];

/** Every feature name a target lists that can change generated code. */
export const KILN_FEATURES: readonly string[] = [...FEATURES, ...LANGUAGE_FEATURES];

/**
 * Compute units (NVIDIA SMs) of adapters known by name; WebGPU does not report the count.
 * Tile shapes use it to avoid a last wave of workgroups that leaves most units idle.
 */
const COMPUTE_UNITS: [RegExp, number][] = [
  [/H100 PCIe/i, 114],
  [/H100|H200|GH200/i, 132],
  [/A100/i, 108],
  [/L40S?\b/i, 142],
  [/RTX 4090/i, 128],
];

/** The compute units of an adapter named `name` (its description), where known. */
export function computeUnitsOf(name: string): number | undefined {
  return COMPUTE_UNITS.find(([re]) => re.test(name))?.[1];
}

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
  const units = computeUnitsOf(`${adapter.info.description} ${adapter.info.device}`);
  return Object.freeze({
    backend: "webgpu" as const,
    features: [
      ...FEATURES.filter((f) => adapter.features.has(f)),
      ...LANGUAGE_FEATURES.filter((f) => wgslFeatures?.has(f)),
    ],
    limits: Object.freeze(limits),
    ...(units ? { computeUnits: units } : {}),
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
