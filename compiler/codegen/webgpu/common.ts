/**
 * Shared pieces of the generated WGSL: binding declarations in contract order, the kernel
 * entry point with the linear workgroup id, f16 reads through `unpack2x16float` (no
 * `shader-f16` needed) and element access to dense or group-quantised weights.
 * @module
 */
import {
  bindings,
  type DenseDtype,
  groupLayout,
  type KernelSpec,
  pow2Floor,
  type TargetInfo,
  type WeightFormat,
} from "../contract.ts";

/** A float as a WGSL literal (full f32 precision). */
export function lit(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`cannot write ${x} as a WGSL f32 literal`);
  return Math.fround(x).toExponential(9);
}

/** Binding 0 (`R`) and every storage binding of `spec`, typed by `types[name]`. */
export function declareBindings(spec: KernelSpec, types: Record<string, string>): string {
  const lines = ["@group(0) @binding(0) var<uniform> R: vec4<u32>;"];
  bindings(spec).forEach((b, i) => {
    const type = types[b.name];
    if (!type) throw new Error(`codegen for ${spec.op} gave no WGSL type for binding ${b.name}`);
    const access = b.access === "read" ? "read" : "read_write";
    lines.push(`@group(0) @binding(${i + 1}) var<storage, ${access}> ${b.name}: ${type};`);
  });
  return lines.join("\n");
}

/** WGSL element type of a dense buffer of `dtype` (f16 is read as packed u32 words). */
export function denseType(dtype: DenseDtype): string {
  return dtype === "f32" ? "array<f32>" : "array<u32>";
}

/** `fn <name>_at(i: u32) -> f32` reading element i of a dense f32 or packed-f16 buffer. */
export function denseReader(name: string, dtype: DenseDtype): string {
  return dtype === "f32"
    ? `fn ${name}_at(i: u32) -> f32 { return ${name}[i]; }`
    : `fn ${name}_at(i: u32) -> f32 { return unpack2x16float(${name}[i >> 1u])[i & 1u]; }`;
}

/**
 * The entry point header: `wg` is the linear workgroup id (ids past the total return at once),
 * `lid` the local invocation index. `total` is a WGSL expression in `R.x`.
 */
export function entry(workgroupSize: number, total: string): string {
  return `@compute @workgroup_size(${workgroupSize})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wg = wid.x + wid.y * nwg.x;
  if (wg >= ${total}) { return; }`;
}

/** WGSL expression: the splits a row (or block of rows) of a dispatch of R.x rows has (the
 * contract's `splitsPerRow`; uniform). */
export function splitsPerRowWgsl(g: { splits: number; splitRows: number }): string {
  return `clamp(${g.splitRows}u / R.x, 1u, ${g.splits}u)`;
}

/**
 * A reader's sum of a `kSplit` matmul's partials as WGSL: `call(i)` is buf[i] + buf[i +
 * stride] + ... in split order over all `splits` (an expression, `decl` empty) or, with
 * `splitRows` (the matmul's kSplitRows), over the dispatch's first clamp(splitRows / R.x, 1,
 * splits) (`splitsRead`; the others are not written): a function `name` looping over them.
 */
export function splitSum(
  name: string,
  type: string,
  buf: string,
  splits: number,
  stride: number,
  splitRows?: number,
): { decl: string; call: (i: string) => string } {
  if (splitRows === undefined) {
    return {
      decl: "",
      call: (i) =>
        splits === 1
          ? `${buf}[${i}]`
          : `(${
            range(splits).map((s) => `${buf}[${i}${s ? ` + ${s * stride}u` : ""}]`).join(" + ")
          })`,
    };
  }
  const n = splitsPerRowWgsl({ splits, splitRows });
  return {
    decl: `// ${buf}[i] + ${buf}[i + ${stride}] + ... over this dispatch's partials (split order)
fn ${name}(i: u32) -> ${type} {
  var t = ${buf}[i];
  for (var s = 1u; s < ${n}; s++) { t += ${buf}[i + s * ${stride}u]; }
  return t;
}`,
    call: (i) => `${name}(${i})`,
  };
}

/** Workgroup count total for `rowsPerGroup` and `groupsPerRowBlock`, as WGSL. */
export function totalGroups(rowsPerGroup: number, groupsPerRowBlock: number): string {
  return `((R.x + ${rowsPerGroup - 1}u) / ${rowsPerGroup}u) * ${groupsPerRowBlock}u`;
}

/** Workgroup count total of a kernel, as WGSL: `totalGroups`, or with `splitGrid` a block of
 * rows' splits' share (the contract's `workgroupCount`). */
export function gridTotal(
  rowsPerGroup: number,
  groupsPerRowBlock: number,
  splitGrid?: { splits: number; splitRows: number },
): string {
  return splitGrid
    ? `${totalGroups(rowsPerGroup, groupsPerRowBlock / splitGrid.splits)} * ${
      splitsPerRowWgsl(splitGrid)
    }`
    : totalGroups(rowsPerGroup, groupsPerRowBlock);
}

/** Binding types for a weight of format `w`. */
export function weightTypes(w: WeightFormat): Record<string, string> {
  return w.kind === "dense"
    ? { weight: denseType(w.dtype) }
    : { q_weight: "array<u32>", q_scale: denseType(w.scaleDtype) };
}

/**
 * `fn w_at(c: u32, k: u32) -> f32`: element (c, k) of a [rows, K] weight (c counted from the
 * first row the binding holds). For group formats k may run to the padded K.
 */
export function weightReader(w: WeightFormat, K: number): string {
  if (w.kind === "dense") {
    return `${denseReader("weight", w.dtype)}
fn w_at(c: u32, k: u32) -> f32 { return weight_at(c * ${K}u + k); }`;
  }
  const g = groupLayout(w, K);
  const mask = (1 << w.bits) - 1;
  return `${denseReader("q_scale", w.scaleDtype)}
fn w_at(c: u32, k: u32) -> f32 {
  let word = q_weight[c * ${g.wordsPerRow}u + k / ${g.elemsPerWord}u];
  let q = (word >> ((k % ${g.elemsPerWord}u) * ${w.bits}u)) & ${mask}u;
  return (f32(q) - ${g.maxInt}.0) * q_scale_at(c * ${g.groups}u + k / ${w.groupSize}u);
}`;
}

/** Bytes one binding of `rows` weight rows of width K takes (the largest binding). */
export function weightBindingBytes(w: WeightFormat, rows: number, K: number): number {
  if (w.kind === "dense") return rows * K * (w.dtype === "f32" ? 4 : 2);
  return rows * groupLayout(w, K).wordsPerRow * 4;
}

/** Throws when a kernel does not fit the target (bindings count, binding size, workgroup). */
export function checkTarget(
  spec: KernelSpec,
  target: TargetInfo,
  use: { workgroupSize: number; sharedBytes: number; largestBinding?: number },
): void {
  const l = target.limits;
  const n = bindings(spec).length;
  const where = `wgslKernel(${spec.op})`;
  if (n > l.maxStorageBuffersPerShaderStage) {
    throw new RangeError(
      `${where}: needs ${n} storage buffers, the target allows ${l.maxStorageBuffersPerShaderStage}`,
    );
  }
  if (
    use.workgroupSize > l.maxComputeInvocationsPerWorkgroup ||
    use.workgroupSize > l.maxComputeWorkgroupSizeX
  ) {
    throw new RangeError(
      `${where}: workgroup of ${use.workgroupSize} exceeds the target's ${l.maxComputeInvocationsPerWorkgroup} invocations`,
    );
  }
  if (use.sharedBytes > l.maxComputeWorkgroupStorageSize) {
    throw new RangeError(
      `${where}: needs ${use.sharedBytes} bytes of workgroup storage, the target allows ${l.maxComputeWorkgroupStorageSize}`,
    );
  }
  if (use.largestBinding !== undefined && use.largestBinding > l.maxStorageBufferBindingSize) {
    throw new RangeError(
      `${where}: a weight binding of ${use.largestBinding} bytes exceeds maxStorageBufferBindingSize ${l.maxStorageBufferBindingSize}; split its rows (rowStart/rows) into smaller kernels`,
    );
  }
}

/**
 * WGSL `dots4(q, w)`: the packed int8 dot products of 4 codes `q` with each word of `w`.
 * Unrolled kernels call it instead of writing the four `dot4I8Packed` calls out: naga's shader
 * module creation takes time quadratic in the expressions of a function (the 8B's tiled q8
 * matmuls ~300 ms each on the H100 host, 95% of pipeline creation with the driver's cache
 * warm), and a call is one expression where the four calls and their vector are thirteen. The
 * driver inlines it.
 */
export const DOTS4 = `fn dots4(q: u32, w: vec4<u32>) -> vec4<i32> {
  return vec4<i32>(dot4I8Packed(q, w.x), dot4I8Packed(q, w.y), dot4I8Packed(q, w.z),
    dot4I8Packed(q, w.w));
}`;

/** 0, 1, ..., n - 1 (the indices a generator unrolls). */
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** `n` copies of `f(i)` joined by `sep` (unrolled WGSL). */
export const rep = (n: number, f: (i: number) => string, sep = " ") =>
  Array.from({ length: n }, (_, i) => f(i)).join(sep);

export { pow2Floor };

/**
 * Accumulators a thread hands to each pass of a matmul's cross-thread reduction (P floats of
 * each of T threads in workgroup memory): whole outputs (multiples of NW, at most A) within the
 * `bytes` of workgroup storage left; throws (naming `kernel`) where not even one output fits.
 */
export function reductionPass(
  kernel: string,
  A: number,
  NW: number,
  T: number,
  bytes: number,
): number {
  const P = Math.min(A, Math.floor(bytes / (4 * T * NW)) * NW);
  if (P < NW) {
    throw new RangeError(
      `${kernel}: ${T} threads need ${4 * T * NW} bytes of workgroup storage, ${bytes} are left`,
    );
  }
  return P;
}

/** Threads for a one-workgroup-per-row reduction: a power of two within the target. */
export function reductionThreads(target: TargetInfo, want = 256): number {
  const l = target.limits;
  return pow2Floor(Math.min(want, l.maxComputeInvocationsPerWorkgroup, l.maxComputeWorkgroupSizeX));
}

/** WGSL for a tree reduction of `arr` (workgroup array of `n` = power of two) into arr[0]. */
export function treeReduce(arr: string, n: number, combine: (a: string, b: string) => string) {
  return `for (var s = ${n >> 1}u; s > 0u; s = s >> 1u) {
    if (lid < s) { ${arr}[lid] = ${combine(`${arr}[lid]`, `${arr}[lid + s]`)}; }
    workgroupBarrier();
  }`;
}

/** WGSL: where chunk `q` (a u32 expression: elements 4q..4q+3) of a unit-major row of W
 * elements lies, in chunks (the contract's `unitMajorChunk`; W a multiple of 32). */
export function unitChunk(q: string, W: number): string {
  if (W % 32 !== 0) throw new RangeError(`unit-major rows need a multiple of 32, got ${W}`);
  return `(((${q}) & 7u) * ${W / 32}u + ((${q}) >> 3u))`;
}

/** WGSL: where element `k` (a u32 expression) of a unit-major row of W elements lies (the
 * contract's `unitMajorIndex`). */
export function unitElem(k: string, W: number): string {
  return `(${unitChunk(`(${k}) >> 2u`, W)} * 4u + ((${k}) & 3u))`;
}

/** Loads a thread of a row pass (`rowPass`) issues together. */
export const ROW_LOADS = 8;

/**
 * WGSL: a pass of T threads over a row of V elements of `buf` starting at `base` (a u32 in
 * scope): thread lid visits c = lid, lid + T, ... in order, its loads issued `ROW_LOADS` at a
 * time (one workgroup a row reads at the latency of its loads, not of the memory's
 * bandwidth, when each waits for the last). `body(p, ok, c)` runs for each: p its value, ok
 * whether c < V (past the row the last element is loaded again), c its index.
 */
export function rowPass(
  buf: string,
  V: number,
  T: number,
  body: (p: string, ok: string, c: string) => string,
): string {
  return spanPass(buf, null, `${V}u`, V, T, body);
}

/** `rowPass` over elements lo..hi-1 of the row (u32 WGSL expressions; `lo` null: from 0, `hi`
 * at most `L` past `lo`): past hi, element hi - 1 is loaded again. */
export function spanPass(
  buf: string,
  lo: string | null,
  hi: string,
  L: number,
  T: number,
  body: (p: string, ok: string, c: string) => string,
): string {
  const U = Math.max(1, Math.min(ROW_LOADS, Math.ceil(L / T)));
  const c = (k: number) => `(c0 + ${k * T}u)`;
  const last = lo === null && /^\d+u$/.test(hi) ? `${parseInt(hi) - 1}u` : `${hi} - 1u`;
  return `for (var c0 = ${lo === null ? "lid" : `${lo} + lid`}; c0 < ${hi}; c0 += ${U * T}u) {
    ${range(U).map((k) => `let p${k} = ${buf}[base + min(${c(k)}, ${last})];`).join(" ")}
    ${range(U).map((k) => body(`p${k}`, `${c(k)} < ${hi}`, c(k))).join("\n    ")}
  }`;
}
