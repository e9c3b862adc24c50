/**
 * Loading a compiled library: `lib.js` is an ES module with `metadata`, `target`, `plan` and,
 * for the CPU target, the bundled `cpuKernel`. Integrity (sha256 against the manifest) is the
 * cache's job (`jit/`); this only imports.
 * @module
 */
import type { CpuKernel, KernelSpec, TargetInfo } from "../compiler/codegen/contract.ts";
import type { LibraryPlan } from "../compiler/codegen/plan.ts";
import type { CompileMetadata } from "../compiler/metadata.ts";
import { toFileUrl } from "./paths.ts";

export interface Library {
  dir: string;
  metadata: CompileMetadata;
  target: TargetInfo;
  plan: LibraryPlan;
  cpuKernel?: (spec: KernelSpec) => CpuKernel;
}

export async function loadLibrary(dir: string): Promise<Library> {
  return libraryFromModule(dir, await import(toFileUrl(`${dir}/lib.js`).href));
}

/** A library from its imported `lib.js` module (e.g. one the JIT verified and imported). */
export function libraryFromModule(dir: string, mod: Record<string, unknown>): Library {
  if (!mod.plan || !mod.metadata) throw new TypeError(`${dir}/lib.js is not a Kiln library (no plan/metadata export)`);
  return {
    dir,
    metadata: mod.metadata as CompileMetadata,
    target: mod.target as TargetInfo,
    plan: mod.plan as LibraryPlan,
    cpuKernel: mod.cpuKernel as Library["cpuKernel"],
  };
}
