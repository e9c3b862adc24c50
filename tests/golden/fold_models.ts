/**
 * What the end-to-end fold tests share: a random model in a temporary folder, and its q4f16_1
 * library compiled at an opt string for this machine's adapter, loaded.
 * @module
 */
import { compile } from "../../compiler/compile.ts";
import { resolveTarget } from "../../compiler/target.ts";
import { Model } from "../../engine/model.ts";
import { makeModel } from "../../examples/make_model.ts";

/** Runs `body` on a temporary folder holding a random `variant` model (f32 weights from
 * `seed`) in `model/`; removes the folder after. */
export async function withRandomModel(
  prefix: string,
  variant: string,
  seed: number,
  body: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await makeModel({ out: `${dir}/model`, variant, seed, dtype: "f32" });
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The model in `dir`/model compiled at `opt` (into `dir`/lib-`opt`) and loaded. */
export async function compiledModel(dir: string, opt: string, numPages: number): Promise<Model> {
  await compile({
    config: `${dir}/model`,
    quantization: "q4f16_1",
    target: await resolveTarget("auto"),
    opt,
    output: `${dir}/lib-${opt}`,
    warn: () => {},
  });
  return await Model.load({ lib: `${dir}/lib-${opt}`, weights: `${dir}/model`, numPages });
}
