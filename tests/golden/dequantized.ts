/**
 * What the kernels actually see, as HF-named float64 tensors: every weight stored in the
 * quantization's format and decoded back (group-dequantised, or rounded to f16), then split
 * into its HF sources. The float64 reference run on these is the reference for quantized
 * libraries.
 * @module
 */
import { normalizeConfig, readModelConfig } from "../../compiler/config/model_config.ts";
import { weightDefs } from "../../compiler/models/llama.ts";
import { dequantizeWeight, getQuantization, type StoredTensor } from "../../compiler/quant/mod.ts";
import { readWeightValues, storeWeight } from "../../compiler/weights/hf_params.ts";
import { openSafetensors } from "../../compiler/weights/safetensors.ts";
import { f16ToF32 } from "../../compiler/weights/dtype.ts";

export async function dequantizedWeights(dir: string, quantization: string): Promise<Map<string, Float64Array>> {
  const src = await readModelConfig(dir);
  const cfg = normalizeConfig(src.raw, src.path);
  const quant = getQuantization(quantization);
  const index = await openSafetensors(dir);
  const out = new Map<string, Float64Array>();
  for (const def of weightDefs(cfg, quant)) {
    const values = await readWeightValues(index, def);
    const stored = storeWeight(def, values);
    let back: Float32Array;
    if (def.format.kind === "group") {
      const st: StoredTensor[] = stored.map((t) => ({ suffix: t.name.slice(def.base.length + 1), dtype: t.dtype as StoredTensor["dtype"], shape: t.shape, data: t.data }));
      back = dequantizeWeight(def.format, st, def.shape[0], def.shape[1]);
    } else {
      const t = stored[0];
      const buf = t.data.slice().buffer;
      back = t.dtype === "float16" ? f16ToF32(new Uint16Array(buf)) : new Float32Array(buf);
    }
    // split back into the HF sources, each its own rows of the stacked weight
    let off = 0;
    for (const src of def.sources) {
      const n = index.byName.get(src)!.shape.reduce((a, b) => a * b, 1);
      out.set(src, Float64Array.from(back.subarray(off, off + n)));
      off += n;
    }
  }
  return out;
}
