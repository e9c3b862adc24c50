/**
 * The quantization schemes by MLC name. Kiln implements MLC's no-quant and NK group-quant
 * schemes; the other names MLC knows are recognised and refused with what they mean.
 * @module
 */
import type { WeightFormat } from "../codegen/contract.ts";
import { ConfigError, NotImplementedError } from "../errors.ts";
import type { QuantScheme } from "./types.ts";

function dense(name: string, dtype: "f32" | "f16"): QuantScheme {
  const f: WeightFormat = Object.freeze({ kind: "dense", dtype });
  return Object.freeze({ name, modelDtype: dtype, linear: f, embedding: f });
}

function group(name: string, bits: 3 | 4, groupSize: number, dtype: "f32" | "f16"): QuantScheme {
  const f: WeightFormat = Object.freeze({ kind: "group", bits, groupSize, scaleDtype: dtype });
  return Object.freeze({ name, modelDtype: dtype, linear: f, embedding: f });
}

/** The implemented schemes. In the group ones, every linear layer (lm_head included) and the
 * embedding are quantised (MLC: quantize_embedding = quantize_final_fc = True); norms and
 * biases stay in the model dtype. */
const SCHEMES: Readonly<Record<string, QuantScheme>> = Object.freeze({
  q0f32: dense("q0f32", "f32"),
  q0f16: dense("q0f16", "f16"),
  q3f16_1: group("q3f16_1", 3, 40, "f16"),
  q4f16_1: group("q4f16_1", 4, 32, "f16"),
  q4f32_1: group("q4f32_1", 4, 32, "f32"),
});

/** Names `getQuantization` accepts. */
export const QUANTIZATIONS: readonly string[] = Object.freeze(Object.keys(SCHEMES));

const KN = (bits: number, g: number, alt: string) =>
  `is MLC's int${bits} group quantization (group ${g}, f16 scale) with the KN weight layout: ` +
  `q_weight stored transposed as [ceil(K/${g})*${g}/${Math.floor(32 / bits)}, N] and q_scale ` +
  `as [ceil(K/${g}), N]. Kiln implements only the NK layout; use ${alt} (same bits and ` +
  `groups, NK layout) and convert the weights again`;

/** Names MLC defines that Kiln does not implement, with what they mean there. */
const NOT_IMPLEMENTED: Readonly<Record<string, string>> = Object.freeze({
  q3f16_0: KN(3, 40, "q3f16_1"),
  q4f16_0: KN(4, 32, "q4f16_1"),
  q4bf16_0: "is int4 group quantization with a bfloat16 model dtype and the KN layout; Kiln " +
    "stores weights in f32 or f16 only: use q4f16_1",
  q4bf16_1: "is int4 group quantization (group 32, NK) with a bfloat16 model dtype; Kiln " +
    "stores weights in f32 or f16 only: use q4f16_1",
  q0bf16: "keeps weights unquantised in bfloat16; Kiln stores weights in f32 or f16 only: " +
    "use q0f16 or q0f32",
  q4f16_2: "is q4f16_1 with the embedding and lm_head left unquantised in f16; Kiln does " +
    "not implement it: use q4f16_1",
  q4f16_autoawq: "loads AutoAWQ pre-quantised checkpoints (int4, group 128, with zero points); " +
    "Kiln does not implement it: quantise the f16 checkpoint with q4f16_1 instead",
  q4f16_ft: "is FasterTransformer int4 quantization (int8 storage, per-channel scales, " +
    "weights pre-processed for CUTLASS mixed-precision GEMM kernels, CUDA only); Kiln targets " +
    "WebGPU and has no such kernels: use q4f16_1",
  e5m2_e5m2_f16: "is per-tensor float8 (e5m2) weight and activation quantization; Kiln does " +
    "not implement FP8: use q4f16_1 or q0f16",
  e4m3_e4m3_f16: "is per-tensor float8 (e4m3) weight and activation quantization with " +
    "scales; Kiln does not implement FP8: use q4f16_1 or q0f16",
  e4m3_e4m3_f16_max_calibrate: "is per-tensor float8 (e4m3) quantization with max " +
    "calibration; Kiln does not implement FP8: use q4f16_1 or q0f16",
});

/**
 * The scheme named `name` (MLC's names, e.g. "q4f16_1").
 * Throws ConfigError for an unknown name and NotImplementedError for a name MLC defines that
 * Kiln does not implement (including the combinations MLC itself refuses with
 * tensor_parallel_shards > 1: FasterTransformer and the KN layouts).
 *
 * @example
 * ```ts
 * import { getQuantization } from "./registry.ts";
 * const q = getQuantization("q4f16_1");
 * if (q.linear.kind !== "group" || q.modelDtype !== "f16") throw new Error("unexpected");
 * ```
 */
export function getQuantization(
  name: string,
  opts: { tensorParallelShards?: number } = {},
): QuantScheme {
  const shards = opts.tensorParallelShards ?? 1;
  if (!Number.isInteger(shards) || shards < 1) {
    throw new RangeError(`tensorParallelShards ${shards} must be a positive integer`);
  }
  if (typeof name !== "string") throw new TypeError(`quantization name must be a string`);
  if (shards > 1 && name === "q4f16_ft") {
    throw new NotImplementedError(
      `quantization "q4f16_ft" with tensor_parallel_shards = ${shards}: MLC-LLM itself refuses ` +
        `FasterTransformer quantization (CUTLASS-preprocessed int4 weights) under tensor ` +
        `parallelism, and Kiln does not implement q4f16_ft at all; use q4f16_1`,
    );
  }
  if (shards > 1 && (name === "q3f16_0" || name === "q4f16_0")) {
    throw new NotImplementedError(
      `quantization "${name}" with tensor_parallel_shards = ${shards}: MLC-LLM refuses the KN ` +
        `layout (q3f16_0, q4f16_0) under tensor parallelism, and Kiln does not implement KN; ` +
        `use ${name.replace("_0", "_1")}`,
    );
  }
  if (Object.hasOwn(SCHEMES, name)) return SCHEMES[name];
  const why = Object.hasOwn(NOT_IMPLEMENTED, name) ? NOT_IMPLEMENTED[name] : undefined;
  if (why) throw new NotImplementedError(`quantization "${name}" ${why}`);
  throw new ConfigError(
    `unknown quantization "${name}"; Kiln implements ${QUANTIZATIONS.join(", ")} ` +
      `(MLC also defines ${Object.keys(NOT_IMPLEMENTED).join(", ")}, not implemented)`,
  );
}
