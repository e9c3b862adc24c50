/**
 * A model config's q4f16_1 library compiled for a target (in a temporary folder, removed
 * again): as the (spec, WGSL) items `kernels()` takes (what the pipeline benches create), or
 * made live on a device with synthetic weights (what the experiments run).
 * @module
 */
import { compile } from "../../compiler/compile.ts";
import type { KernelSpec, TargetInfo, WgslKernel } from "../../compiler/codegen/contract.ts";
import { type Library, loadLibrary } from "../../engine/library.ts";
import { Model } from "../../engine/model.ts";
import { ModelRuntime } from "../../engine/runtime.ts";
import type { Device } from "../../engine/device.ts";
import { syntheticWeights } from "./synthetic_weights.ts";

/** One kernel of a library: its spec and its WGSL. */
export interface LibraryItem {
  spec: KernelSpec;
  source: WgslKernel;
}

/** `config`'s q4f16_1 library for `target`. */
async function compiled(config: string, target: TargetInfo): Promise<Library> {
  const dir = await Deno.makeTempDir({ prefix: "kiln-bench-lib-" });
  try {
    await compile({
      config,
      quantization: "q4f16_1",
      target,
      output: `${dir}/lib`,
      warn: () => {},
    });
    return await loadLibrary(`${dir}/lib`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The kernels of `config`'s q4f16_1 library for `target`, in plan order. */
export async function libraryItems(config: string, target: TargetInfo): Promise<LibraryItem[]> {
  const lib = await compiled(config, target);
  return lib.plan.kernels.map((k) => ({ spec: k.spec as KernelSpec, source: k.wgsl! }));
}

/** `config`'s q4f16_1 library for `target` on `dev` with synthetic weights (a bench device
 * fills them on the GPU) and `numPages` KV pages, as a Model (whose constructor is private: the
 * benches build it around their own runtime). */
export async function syntheticModel(
  config: string,
  target: TargetInfo,
  dev: Device,
  numPages: number,
): Promise<{ lib: Library; rt: ModelRuntime; model: Model }> {
  const lib = await compiled(config, target);
  const rt = await ModelRuntime.create(lib, dev, syntheticWeights(), { numPages });
  const model = new (Model as unknown as new (l: Library, r: ModelRuntime) => Model)(lib, rt);
  return { lib, rt, model };
}
