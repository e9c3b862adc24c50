/**
 * Weight formats: HF safetensors (read, write), MLC's tensor cache (tensor-cache.json +
 * params_shard_N.bin: read, write) and the float16/bfloat16 conversions they need.
 * @module
 */

export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./dtype.ts";
export {
  openSafetensors,
  readTensor,
  readTensorF32,
  SAFETENSORS_DTYPE_SIZES,
  type SafetensorsEntry,
  type SafetensorsIndex,
} from "./safetensors.ts";
export {
  SAFETENSORS_WRITE_DTYPES,
  type SafetensorsTensor,
  writeSafetensors,
} from "./safetensors_write.ts";
export {
  openTensorCache,
  TENSOR_CACHE_DTYPE_SIZES,
  type TensorCache,
  type TensorCacheJson,
  type TensorCacheRecord,
  type TensorCacheShard,
} from "./tensor_cache.ts";
export { TensorCacheWriter, type TensorCacheWriterOptions } from "./tensor_cache_write.ts";
