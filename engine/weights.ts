/**
 * Where a runtime gets its params: an MLC-format folder (tensor-cache.json / ndarray-cache.json)
 * read as it is, or a Hugging Face folder quantised in memory for the library's quantization.
 * Each tensor is checked against the library's params table (shape, dtype).
 * @module
 */
import { WeightError } from "../compiler/errors.ts";
import type { ParamInfo } from "../compiler/ir/graph.ts";
import type { CompileMetadata } from "../compiler/metadata.ts";
import { getQuantization } from "../compiler/quant/mod.ts";
import { openTensorCache } from "../compiler/weights/tensor_cache.ts";
import { type NamedTensor, readWeightValues, storeWeight } from "../compiler/weights/hf_params.ts";
import { openSafetensors } from "../compiler/weights/safetensors.ts";
import { storedTensors, type WeightDef, weightDefs } from "../compiler/models/llama.ts";

export interface WeightSource {
  readonly kind: "mlc" | "hf";
  tensor(name: string, info: ParamInfo): Promise<Uint8Array>;
}

async function exists(p: string): Promise<boolean> {
  return await Deno.stat(p).then(() => true, () => false);
}

function check(t: { name: string; shape: number[]; dtype: string }, info: ParamInfo, where: string): void {
  if (t.dtype !== info.dtype || t.shape.join(",") !== info.shape.join(",")) {
    throw new WeightError(
      `${where}: ${t.name} is ${t.dtype}[${t.shape}] but the library expects ${info.dtype}[${info.shape}]; the weights were converted for another quantization or model config`,
    );
  }
}

export async function openWeights(dir: string, metadata: CompileMetadata): Promise<WeightSource> {
  if (await exists(`${dir}/tensor-cache.json`) || await exists(`${dir}/ndarray-cache.json`)) {
    const cache = await openTensorCache(dir);
    return {
      kind: "mlc",
      async tensor(name, info) {
        const rec = cache.byName.get(name);
        if (!rec) throw new WeightError(`${cache.jsonPath}: param ${name} is missing; re-convert the weights for ${metadata.quantization}`);
        check({ name, shape: rec.shape, dtype: rec.format === "f32-to-bf16" ? "float32" : rec.dtype }, info, cache.jsonPath);
        return await cache.readTensor(name);
      },
    };
  }
  // HF: each weight is read and quantised when its first stored tensor is asked for, and kept
  // only until its other stored tensors (q_weight / q_scale) are taken: one weight in memory.
  const quant = getQuantization(metadata.quantization, { tensorParallelShards: metadata.tensor_parallel_shards });
  const index = await openSafetensors(dir);
  const defOf = new Map<string, WeightDef>();
  for (const def of weightDefs(metadata.model_config, quant)) {
    for (const t of storedTensors(def)) defOf.set(t.name, def);
  }
  const ready = new Map<string, NamedTensor>();
  return {
    kind: "hf",
    async tensor(name, info) {
      if (!ready.has(name)) {
        const def = defOf.get(name);
        if (!def) throw new WeightError(`${dir}: no HF weights make param ${name}`);
        for (const t of storeWeight(def, await readWeightValues(index, def))) ready.set(t.name, t);
      }
      const t = ready.get(name)!;
      ready.delete(name);
      check(t, info, dir);
      return t.data;
    },
  };
}
