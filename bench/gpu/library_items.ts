/**
 * A model config's q4f16_1 library compiled for a target (in a temporary folder, removed
 * again), as the (spec, WGSL) items `kernels()` takes: what the pipeline benches create.
 * @module
 */
import { compile } from "../../compiler/compile.ts";
import type { KernelSpec, TargetInfo, WgslKernel } from "../../compiler/codegen/contract.ts";
import { loadLibrary } from "../../engine/library.ts";

/** One kernel of a library: its spec and its WGSL. */
export interface LibraryItem {
  spec: KernelSpec;
  source: WgslKernel;
}

/** The kernels of `config`'s q4f16_1 library for `target`, in plan order. */
export async function libraryItems(config: string, target: TargetInfo): Promise<LibraryItem[]> {
  const dir = await Deno.makeTempDir({ prefix: "kiln-pipelines-" });
  try {
    await compile({
      config,
      quantization: "q4f16_1",
      target,
      output: `${dir}/lib`,
      warn: () => {},
    });
    const lib = await loadLibrary(`${dir}/lib`);
    return lib.plan.kernels.map((k) => ({ spec: k.spec as KernelSpec, source: k.wgsl! }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
