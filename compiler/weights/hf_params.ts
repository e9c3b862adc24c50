/**
 * Kiln's params from a Hugging Face folder: each weight's HF tensors are read, concatenated
 * (q,k,v → qkv_proj; gate,up → gate_up_proj), checked against the config's shapes and stored
 * in the quantization's format. Streams one weight at a time.
 * @module
 */
import type { ModelConfig } from "../config/model_config.ts";
import { WeightError } from "../errors.ts";
import { storedTensors, type WeightDef, weightDefs } from "../models/llama.ts";
import { quantizeWeight, type QuantScheme, type StoredTensor } from "../quant/mod.ts";
import { f32ToF16 } from "./dtype.ts";
import { openSafetensors, readTensorF32, type SafetensorsIndex } from "./safetensors.ts";

export interface NamedTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** A weight's float32 values: its HF tensors read and stacked along dim 0, shape-checked. */
export async function readWeightValues(
  index: SafetensorsIndex,
  def: WeightDef,
): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  for (const src of def.sources) {
    const e = index.byName.get(src);
    if (!e) {
      throw new WeightError(
        `${index.dir}: tensor "${src}" (for ${def.base}) is missing from the safetensors files`,
      );
    }
    parts.push(await readTensorF32(e));
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const want = def.shape.reduce((a, b) => a * b, 1);
  if (total !== want) {
    throw new WeightError(
      `${index.dir}: ${
        def.sources.join(" + ")
      } hold ${total} values but ${def.base} needs [${def.shape}] = ${want}; the weights do not match config.json`,
    );
  }
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(total); // rows of each source, stacked
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Stored tensors of one weight, made from its float32 values. */
export function storeWeight(def: WeightDef, values: Float32Array): NamedTensor[] {
  const names = storedTensors(def);
  if (def.shape.length === 1) {
    const t = names[0];
    const data = t.dtype === "float32" ? bytes(values) : bytes(f32ToF16(values));
    return [{ name: t.name, dtype: t.dtype, shape: t.shape, data }];
  }
  const stored: StoredTensor[] = quantizeWeight(def.format, values, def.shape[0], def.shape[1]);
  return stored.map((s) => ({
    name: `${def.base}.${s.suffix}`,
    dtype: s.dtype,
    shape: s.shape,
    data: s.data,
  }));
}

/** Every stored tensor of the model, weight by weight. */
export async function* hfStoredTensors(
  dir: string,
  config: ModelConfig,
  quant: QuantScheme,
): AsyncGenerator<NamedTensor> {
  const index = await openSafetensors(dir);
  for (const def of weightDefs(config, quant)) {
    yield* storeWeight(def, await readWeightValues(index, def));
  }
}
