/**
 * Hardware detection: the WebGPU adapter (or its absence) as a `Target` — the contract's
 * `TargetInfo` (backend, features, limits) plus vendor, architecture and description — and a
 * fingerprint of exactly the parts that change generated code, which goes into the cache key.
 * @module
 */
import type { TargetInfo, TargetLimits } from "../compiler/codegen/contract.ts";
import {
  CPU_TARGET,
  DEFAULT_WEBGPU_LIMITS,
  KILN_FEATURES,
  LIMIT_KEYS as COMPILER_LIMIT_KEYS,
  targetFromAdapter as compilerTarget,
} from "../compiler/target.ts";
import { canonicalJson } from "./canonical_json.ts";
import { digestBytes } from "./digest.ts";
import { TargetError } from "./errors.ts";

/** A detected (or described) compile target. */
export interface Target extends TargetInfo {
  vendor: string;
  architecture: string;
  /** Human-readable adapter name (driver string); not part of the fingerprint. */
  description: string;
  /** sha256 hex of the canonical JSON of backend, vendor, architecture, features, limits
   * (and compute units, where known). */
  fingerprint: string;
}

/** Features (and WGSL language features) Kiln's code generator looks at; others an adapter
 * reports are ignored. */
export { KILN_FEATURES };

/** The limits kernels are specialised by (the keys of `TargetLimits`). */
export const LIMIT_KEYS: (keyof TargetLimits)[] = COMPILER_LIMIT_KEYS;

/** The WebGPU specification's default limits, and the CPU target's (the compiler's own). */
const DEFAULT_LIMITS: TargetLimits = DEFAULT_WEBGPU_LIMITS;
const CPU_LIMITS: TargetLimits = CPU_TARGET.limits;

/** Fingerprint of what changes generated code: backend, vendor, architecture, the Kiln-relevant
 * features (sorted) and the kernel-relevant limits. The description (driver version) is left out. */
export function targetFingerprint(
  t: Pick<Target, "backend" | "vendor" | "architecture" | "features" | "limits" | "computeUnits">,
): string {
  const limits: Record<string, number> = {};
  for (const k of LIMIT_KEYS) limits[k] = t.limits[k];
  return digestBytes(
    "sha256",
    canonicalJson({
      backend: t.backend,
      vendor: t.vendor,
      architecture: t.architecture,
      features: t.features.filter((f) => KILN_FEATURES.includes(f)).sort(),
      limits,
      ...(t.computeUnits ? { computeUnits: t.computeUnits } : {}),
    }),
  );
}

/** Build a complete `Target` (features filtered and sorted, fingerprint computed). */
export function makeTarget(
  t: Pick<Target, "backend" | "vendor" | "architecture" | "features" | "limits"> & {
    description?: string;
    computeUnits?: number;
  },
): Target {
  if (t.backend !== "webgpu" && t.backend !== "cpu") {
    throw new TargetError(
      `target backend must be "webgpu" or "cpu", got ${JSON.stringify(t.backend)}`,
    );
  }
  const limits = {} as TargetLimits;
  for (const k of LIMIT_KEYS) {
    const v = t.limits?.[k];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new TargetError(
        `target limit ${k} must be a positive number, got ${JSON.stringify(v)}`,
      );
    }
    limits[k] = v;
  }
  const cu = t.computeUnits;
  if (cu !== undefined && !(Number.isInteger(cu) && cu > 0)) {
    throw new TargetError(
      `target computeUnits must be a positive integer, got ${JSON.stringify(cu)}`,
    );
  }
  const features = [...new Set(t.features.filter((f) => KILN_FEATURES.includes(f)))].sort();
  const base = {
    backend: t.backend,
    vendor: String(t.vendor ?? ""),
    architecture: String(t.architecture ?? ""),
    features,
    limits,
    ...(cu ? { computeUnits: cu } : {}),
  };
  return { ...base, description: t.description ?? "", fingerprint: targetFingerprint(base) };
}

/** The CPU target (plain TypeScript kernels). */
export function cpuTarget(): Target {
  return makeTarget({
    backend: "cpu",
    vendor: "cpu",
    architecture: Deno.build.arch,
    description: `CPU (${Deno.build.os} ${Deno.build.arch})`,
    features: [],
    limits: CPU_LIMITS,
  });
}

/** A WebGPU target any adapter can run: no optional features, the default limits. */
export function genericWebgpuTarget(): Target {
  return makeTarget({
    backend: "webgpu",
    vendor: "generic",
    architecture: "",
    description: "any WebGPU adapter (default limits, no optional features)",
    features: [],
    limits: DEFAULT_LIMITS,
  });
}

/** Describe a WebGPU adapter as a `Target` (features and limits as the compiler reads them). */
export function targetFromAdapter(adapter: GPUAdapter): Target {
  const info = adapter.info;
  const t = compilerTarget(adapter);
  return makeTarget({
    backend: "webgpu",
    vendor: info.vendor,
    architecture: info.architecture,
    description: [info.description, info.device].filter((s) => s && s !== "0").join(" ") ||
      `adapter of vendor ${info.vendor}`,
    features: t.features,
    limits: t.limits,
    computeUnits: t.computeUnits,
  });
}

export interface DetectOptions {
  /** "auto" (default), "webgpu" (require an adapter), "webgpu-generic" (any adapter: no
   * optional features, default limits; needs no GPU), "cpu", a JSON target description, or
   * the path of a .json file holding one (to compile for another machine). */
  target?: string;
  /** Where one-line notices go (default: console.error). */
  notify?: (message: string) => void;
}

/** Detect the target: request a WebGPU adapter; none → the CPU target with a one-line notice.
 * Returns the adapter too, so the engine can create its device on the same one. */
export async function detectTarget(
  options: DetectOptions = {},
): Promise<{ target: Target; adapter: GPUAdapter | null }> {
  const spec = (options.target ?? "auto").trim();
  const notify = options.notify ?? ((m: string) => console.error(m));
  if (spec === "cpu") return { target: cpuTarget(), adapter: null };
  if (spec === "webgpu-generic") return { target: genericWebgpuTarget(), adapter: null };
  if (spec.startsWith("{") || spec.endsWith(".json")) {
    return { target: await describedTarget(spec), adapter: null };
  }
  if (spec !== "auto" && spec !== "webgpu") {
    throw new TargetError(
      `unknown target ${
        JSON.stringify(spec)
      }: use auto, webgpu, webgpu-generic, cpu, or a JSON target description`,
    );
  }
  const adapter = (await globalThis.navigator?.gpu?.requestAdapter()) ?? null;
  if (adapter) return { target: targetFromAdapter(adapter), adapter };
  if (spec === "webgpu") {
    throw new TargetError(
      "--target webgpu was requested but no WebGPU adapter is available; install a Vulkan " +
        "driver (e.g. mesa-vulkan-drivers) or use --target cpu",
    );
  }
  notify("kiln: no WebGPU adapter found; using the CPU target (slow)");
  return { target: cpuTarget(), adapter: null };
}

async function describedTarget(spec: string): Promise<Target> {
  let text = spec;
  if (!spec.startsWith("{")) {
    try {
      text = await Deno.readTextFile(spec);
    } catch (e) {
      throw new TargetError(`cannot read target description ${spec}: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new TargetError(`target description is not valid JSON: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (!Array.isArray(parsed?.features) || typeof parsed?.limits !== "object") {
    throw new TargetError(
      "a target description needs backend, vendor, architecture, features[] and limits{}",
    );
  }
  return makeTarget(parsed);
}
