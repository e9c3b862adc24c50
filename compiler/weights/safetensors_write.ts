/**
 * Writes a safetensors file: u64 little-endian header length, a JSON header (space-padded to a
 * multiple of 8 bytes) naming each tensor's dtype, shape and data_offsets, then the data.
 * The file is written to a temp path beside `path` and renamed into place.
 * @module
 */

/** Element types the writer accepts, with their sizes in bytes. */
export const SAFETENSORS_WRITE_DTYPES = { F32: 4, F16: 2, BF16: 2, U32: 4 } as const;

/** One tensor to write; `data` holds the raw little-endian bytes. */
export interface SafetensorsTensor {
  name: string;
  dtype: keyof typeof SAFETENSORS_WRITE_DTYPES;
  shape: number[];
  data: Uint8Array; // [prod(shape) * sizeof(dtype)] bytes
}

/**
 * Write `tensors` (in the given order) to the safetensors file `path`.
 *
 * @example
 * ```ts
 * import { writeSafetensors } from "./safetensors_write.ts";
 * const dir = await Deno.makeTempDir();
 * await writeSafetensors(`${dir}/model.safetensors`, [
 *   { name: "w", dtype: "F32", shape: [2], data: new Uint8Array(new Float32Array([1, 2]).buffer) },
 * ]);
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: SafetensorsTensor[],
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new TypeError(`writeSafetensors: metadata["${k}"] must be a string, got ${typeof v}`);
      }
    }
    header["__metadata__"] = { ...metadata };
  }
  let offset = 0;
  for (const t of tensors) {
    const size = SAFETENSORS_WRITE_DTYPES[t.dtype];
    if (size === undefined) {
      throw new TypeError(
        `writeSafetensors: tensor "${t.name}" has unsupported dtype "${t.dtype}"`,
      );
    }
    if (t.name === "__metadata__" || t.name in header) {
      throw new TypeError(`writeSafetensors: duplicate or reserved tensor name "${t.name}"`);
    }
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new RangeError(
        `writeSafetensors: tensor "${t.name}" has invalid shape [${t.shape}]`,
      );
    }
    const nbytes = t.shape.reduce((a, b) => a * b, 1) * size;
    if (t.data.byteLength !== nbytes) {
      throw new RangeError(
        `writeSafetensors: tensor "${t.name}" ${t.dtype}[${t.shape}] needs ${nbytes} bytes, ` +
          `data has ${t.data.byteLength}`,
      );
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + nbytes] };
    offset += nbytes;
  }
  let json = JSON.stringify(header);
  let jsonBytes = new TextEncoder().encode(json);
  const pad = (8 - (jsonBytes.byteLength % 8)) % 8;
  if (pad > 0) {
    json += " ".repeat(pad);
    jsonBytes = new TextEncoder().encode(json);
  }
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);

  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    await writeAll(file, prefix);
    await writeAll(file, jsonBytes);
    for (const t of tensors) await writeAll(file, t.data);
    await file.sync();
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  file.close();
  await Deno.rename(tmp, path);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) done += await file.write(bytes.subarray(done));
}
