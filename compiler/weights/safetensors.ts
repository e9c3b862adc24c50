/**
 * Reads HF safetensors weights: a single `model.safetensors` or a sharded set listed by
 * `model.safetensors.index.json`. Opening reads only the headers; `readTensor` reads one tensor
 * with a seek, so peak memory stays near the largest tensor. Every inconsistency is a
 * WeightError that names the file, the tensor and what to do.
 * @module
 */

import { WeightError } from "../errors.ts";
import { bf16ToF32, f16ToF32 } from "./dtype.ts";

/** Element sizes in bytes of the safetensors dtypes. */
export const SAFETENSORS_DTYPE_SIZES: Readonly<Record<string, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
});

/** Where one tensor lives. `byteOffset` is absolute in `file`. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly file: string; // absolute or dir-joined path of the .safetensors file
  readonly byteOffset: number;
  readonly nbytes: number;
}

/** All tensors of a model folder, in file order then offset order. */
export interface SafetensorsIndex {
  readonly dir: string;
  readonly files: readonly string[];
  readonly tensors: readonly SafetensorsEntry[];
  readonly byName: ReadonlyMap<string, SafetensorsEntry>;
  /** `__metadata__` of every file, merged (later files win). */
  readonly metadata: Readonly<Record<string, string>>;
}

const SINGLE = "model.safetensors";
const INDEX = "model.safetensors.index.json";
const MAX_HEADER = 100 * 1024 * 1024;

/**
 * Open the safetensors weights of `dir` (single file or sharded set).
 *
 * @example
 * ```ts
 * import { openSafetensors, readTensorF32, writeSafetensors } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * const data = new Uint8Array(new Float32Array([1, 2]).buffer);
 * await writeSafetensors(`${dir}/model.safetensors`, [{ name: "w", dtype: "F32", shape: [2], data }]);
 * const index = await openSafetensors(dir);
 * const w = await readTensorF32(index.byName.get("w")!); // Float32Array [1, 2]
 * ```
 */
export async function openSafetensors(dir: string): Promise<SafetensorsIndex> {
  const indexPath = `${dir}/${INDEX}`;
  let files: string[];
  let weightMap: Record<string, string> | null = null;
  if (await exists(indexPath)) {
    weightMap = await readWeightMap(indexPath);
    files = [...new Set(Object.values(weightMap))].sort();
    for (const f of files) {
      if (!(await exists(`${dir}/${f}`))) {
        const names = Object.keys(weightMap).filter((n) => weightMap![n] === f);
        throw new WeightError(
          `${indexPath} names shard "${f}" (holding "${names[0]}"${
            names.length > 1 ? ` and ${names.length - 1} more` : ""
          }) but ${dir}/${f} does not exist; download the missing shard`,
        );
      }
    }
  } else if (await exists(`${dir}/${SINGLE}`)) {
    files = [SINGLE];
  } else {
    throw new WeightError(
      `no safetensors weights in ${dir}: expected ${SINGLE} or ${INDEX}; ` +
        `point --model at a Hugging Face model folder`,
    );
  }
  const tensors: SafetensorsEntry[] = [];
  const byName = new Map<string, SafetensorsEntry>();
  const metadata: Record<string, string> = {};
  for (const f of files) {
    const parsed = await readHeader(`${dir}/${f}`);
    Object.assign(metadata, parsed.metadata);
    for (const e of parsed.tensors) {
      const prev = byName.get(e.name);
      if (prev !== undefined) {
        throw new WeightError(
          `tensor "${e.name}" appears in both ${prev.file} and ${e.file}; ` +
            `remove the stale file or re-download the model`,
        );
      }
      if (weightMap !== null && weightMap[e.name] !== undefined && weightMap[e.name] !== f) {
        throw new WeightError(
          `${indexPath} places tensor "${e.name}" in "${weightMap[e.name]}" but it is in ` +
            `${e.file}; the index does not match the shards, re-download the model`,
        );
      }
      byName.set(e.name, e);
      tensors.push(e);
    }
  }
  if (weightMap !== null) {
    for (const [name, f] of Object.entries(weightMap)) {
      if (!byName.has(name)) {
        throw new WeightError(
          `${indexPath} places tensor "${name}" in "${f}" but ${dir}/${f} has no such tensor; ` +
            `the shard is stale or truncated, re-download it`,
        );
      }
    }
  }
  return { dir, files: files.map((f) => `${dir}/${f}`), tensors, byName, metadata };
}

/** Read the raw little-endian bytes of one tensor (a fresh buffer, offset 0). */
export async function readTensor(entry: SafetensorsEntry): Promise<Uint8Array> {
  const out = new Uint8Array(entry.nbytes); // [nbytes]
  const file = await openOrThrow(entry.file, entry.name);
  try {
    await file.seek(entry.byteOffset, Deno.SeekMode.Start);
    let done = 0;
    while (done < out.byteLength) {
      const n = await file.read(out.subarray(done));
      if (n === null || n === 0) {
        throw new WeightError(
          `${entry.file} ends inside tensor "${entry.name}" (read ${done} of ${entry.nbytes} ` +
            `bytes at offset ${entry.byteOffset}); the file changed or is truncated, re-download it`,
        );
      }
      done += n;
    }
  } finally {
    file.close();
  }
  return out;
}

/** Read one F32/F16/BF16/F64 tensor as float32 (F64 is rounded). */
export async function readTensorF32(entry: SafetensorsEntry): Promise<Float32Array> {
  if (!["F32", "F16", "BF16", "F64"].includes(entry.dtype)) {
    throw new WeightError(
      `tensor "${entry.name}" in ${entry.file} has dtype ${entry.dtype}; only F32, F16, BF16 ` +
        `and F64 convert to float32; read it with readTensor() instead`,
    );
  }
  const raw = await readTensor(entry);
  switch (entry.dtype) {
    case "F32":
      return new Float32Array(raw.buffer);
    case "F16":
      return f16ToF32(new Uint16Array(raw.buffer));
    case "BF16":
      return bf16ToF32(new Uint16Array(raw.buffer));
    default:
      return Float32Array.from(new Float64Array(raw.buffer));
  }
}

// ---------------------------------------------------------------------------------------------
// Header parsing

async function readHeader(
  path: string,
): Promise<{ tensors: SafetensorsEntry[]; metadata: Record<string, string> }> {
  const fail = (what: string) =>
    new WeightError(`${path}: ${what}; the file is corrupt or not safetensors, re-download it`);
  const file = await openOrThrow(path, null);
  let headerBytes: Uint8Array;
  let size: number;
  try {
    size = (await file.stat()).size;
    if (size < 8) throw fail(`file is ${size} bytes, shorter than the 8-byte header length`);
    const prefix = await readExactly(file, 8);
    const n = Number(new DataView(prefix.buffer).getBigUint64(0, true));
    if (n > MAX_HEADER) throw fail(`header length ${n} exceeds the 100 MiB limit`);
    if (8 + n > size) throw fail(`header length ${n} runs past the end of the ${size}-byte file`);
    headerBytes = await readExactly(file, n);
  } finally {
    file.close();
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new WeightError(
      `${path}: header is not valid UTF-8 JSON (${(e as Error).message}); ` +
        `the file is corrupt, re-download it`,
      { cause: e },
    );
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw fail("header JSON is not an object");
  }
  const dataStart = 8 + headerBytes.byteLength;
  const dataSize = size - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsEntry[] = [];
  const spans: [number, number, string][] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null) throw fail("__metadata__ is not an object");
      for (const [k, v] of Object.entries(value)) metadata[k] = String(v);
      continue;
    }
    const bad = (what: string) =>
      new WeightError(`${path}: tensor "${name}" ${what}; the file is corrupt, re-download it`);
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof v !== "object" || v === null) throw bad("has no {dtype, shape, data_offsets}");
    const size1 = typeof v.dtype === "string" ? SAFETENSORS_DTYPE_SIZES[v.dtype] : undefined;
    if (size1 === undefined) {
      throw new WeightError(
        `${path}: tensor "${name}" has unknown dtype ${JSON.stringify(v.dtype)}; supported: ` +
          `${Object.keys(SAFETENSORS_DTYPE_SIZES).join(", ")}; convert the model to F16/BF16/F32`,
      );
    }
    const shape = v.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`has invalid shape ${JSON.stringify(shape)}`);
    }
    const offs = v.data_offsets;
    if (
      !Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o)) ||
      offs[0] < 0 || offs[1] < offs[0]
    ) throw bad(`has invalid data_offsets ${JSON.stringify(offs)}`);
    const [begin, end] = offs as [number, number];
    const want = shape.reduce((a: number, b: number) => a * b, 1) * size1;
    if (end - begin !== want) {
      throw bad(`${v.dtype}[${shape}] needs ${want} bytes but data_offsets span ${end - begin}`);
    }
    if (end > dataSize) {
      throw bad(
        `ends at data byte ${end} but the file holds only ${dataSize} data bytes (truncated)`,
      );
    }
    spans.push([begin, end, name]);
    tensors.push({
      name,
      dtype: v.dtype as string,
      shape,
      file: path,
      byteOffset: dataStart + begin,
      nbytes: want,
    });
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1]) {
      throw fail(`tensors "${spans[i - 1][2]}" and "${spans[i][2]}" overlap`);
    }
  }
  tensors.sort((a, b) => a.byteOffset - b.byteOffset);
  return { tensors, metadata };
}

async function readWeightMap(indexPath: string): Promise<Record<string, string>> {
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(indexPath));
  } catch (e) {
    throw new WeightError(
      `${indexPath} is not valid JSON (${(e as Error).message}); ` +
        `re-download it`,
      { cause: e },
    );
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new WeightError(`${indexPath} has no "weight_map" object; re-download it`);
  }
  for (const [name, f] of Object.entries(map)) {
    if (typeof f !== "string" || f === "" || f.includes("/") || f.includes("\\") || f === "..") {
      throw new WeightError(
        `${indexPath}: weight_map["${name}"] = ${JSON.stringify(f)} is not a file name in the ` +
          `model folder; fix or re-download the index`,
      );
    }
  }
  return map as Record<string, string>;
}

async function readExactly(file: Deno.FsFile, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let done = 0;
  while (done < n) {
    const got = await file.read(out.subarray(done));
    if (got === null || got === 0) throw new WeightError(`unexpected end of file`);
    done += got;
  }
  return out;
}

async function openOrThrow(path: string, tensor: string | null): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { read: true });
  } catch (e) {
    throw new WeightError(
      `cannot open ${path}${tensor === null ? "" : ` (for tensor "${tensor}")`}: ` +
        `${(e as Error).message}; check that the model folder is complete`,
      { cause: e },
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
