/**
 * Synthetic weights made on the GPU. `syntheticWeights()` is a `WeightSource` whose tensors are
 * zero-filled placeholders (never touched on the host: the pages stay unmapped) registered by
 * their ArrayBuffer; a device that sees a placeholder in `write()` calls `fillSynthetic()`
 * instead of uploading, so an 8B model's 4.3 GB never crosses from JS.
 *
 * Word i of a param is a function of (param name, i) only (`syntheticWord` is its CPU twin):
 * - "bits": any u32 (every u32 is a valid q4 word);
 * - "scale": two f16 in [0.002, 0.010) (q4 scales: (q - 7) * scale keeps |w| < 0.08);
 * - "norm": two f16 in [0.95, 1.05) (norm weights);
 * - "small": two f16 in [-0.01, 0.01) (biases, dense f16 weights);
 * - "f32small" / "f32norm": one f32 with the same ranges.
 * @module
 */
import type { ParamInfo } from "../../compiler/ir/graph.ts";
import type { WeightSource } from "../../engine/weights.ts";

export type FillKind = "bits" | "scale" | "norm" | "small" | "f32small" | "f32norm";
const KINDS: FillKind[] = ["bits", "scale", "norm", "small", "f32small", "f32norm"];

/** What placeholder ArrayBuffers stand for. */
const placeholders = new WeakMap<ArrayBufferLike, { name: string; kind: FillKind; seed: number }>();

/** The fill of a param by name and dtype. */
export function fillKind(name: string, dtype: string): FillKind {
  const norm = /norm/.test(name);
  if (dtype === "uint32") return "bits";
  if (dtype === "float32") return norm ? "f32norm" : "f32small";
  if (/scale/.test(name)) return "scale";
  return norm ? "norm" : "small";
}

/** FNV-1a of the name: the param's seed. */
export function seedOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export function syntheticWeights(): WeightSource {
  return {
    kind: "mlc",
    tensor(name: string, info: ParamInfo): Promise<Uint8Array> {
      const bytes = info.shape.reduce((a, b) => a * b, 1) *
        (info.dtype === "float16" || info.dtype === "bfloat16" ? 2 : 4);
      const data = new Uint8Array(Math.ceil(bytes / 4) * 4).subarray(0, bytes);
      placeholders.set(data.buffer, { name, kind: fillKind(name, info.dtype), seed: seedOf(name) });
      return Promise.resolve(data);
    },
  };
}

/** The placeholder behind `data`, with the first word `data` covers; null for real data. */
export function placeholderOf(
  data: ArrayBufferView,
): { name: string; kind: FillKind; seed: number; firstWord: number } | null {
  const p = placeholders.get(data.buffer);
  return p ? { ...p, firstWord: data.byteOffset / 4 } : null;
}

const WGSL = `@group(0) @binding(0) var<uniform> u: vec4<u32>; // words, seed, kind, firstWord
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
fn mix(x: u32) -> u32 { var h = x; h ^= h >> 16u; h *= 0x7feb352du; h ^= h >> 15u; h *= 0x846ca68bu; h ^= h >> 16u; return h; }
fn unit(x: u32) -> f32 { return f32(x >> 8u) / 16777216.0; }
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) n: vec3u) {
  for (var i = g.x; i < u.x; i += n.x * 256u) {
    let w = u.w + i;
    let a = mix(u.y ^ mix(2u * w)); let b = mix(u.y ^ mix(2u * w + 1u));
    var v = a;
    switch u.z {
      case 1u: { v = pack2x16float(vec2f(0.002 + 0.008 * unit(a), 0.002 + 0.008 * unit(b))); }
      case 2u: { v = pack2x16float(vec2f(0.95 + 0.1 * unit(a), 0.95 + 0.1 * unit(b))); }
      case 3u: { v = pack2x16float(vec2f(0.02 * unit(a) - 0.01, 0.02 * unit(b) - 0.01)); }
      case 4u: { v = bitcast<u32>(0.02 * unit(a) - 0.01); }
      case 5u: { v = bitcast<u32>(0.95 + 0.1 * unit(a)); }
      default: {}
    }
    out[i] = v;
  }
}`;

const pipelines = new WeakMap<GPUDevice, GPUComputePipeline>();

/** Queue the fill of `words` words of `buffer` as words [firstWord, firstWord + words) of the param. */
export function fillSynthetic(
  gpu: GPUDevice,
  buffer: GPUBuffer,
  words: number,
  p: { kind: FillKind; seed: number; firstWord: number },
): void {
  let pl = pipelines.get(gpu);
  if (!pl) {
    pl = gpu.createComputePipeline({
      layout: "auto",
      compute: { module: gpu.createShaderModule({ code: WGSL }), entryPoint: "main" },
    });
    pipelines.set(gpu, pl);
  }
  const u = gpu.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  gpu.queue.writeBuffer(u, 0, new Uint32Array([words, p.seed, KINDS.indexOf(p.kind), p.firstWord]));
  const enc = gpu.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pl);
  pass.setBindGroup(
    0,
    gpu.createBindGroup({
      layout: pl.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: u } }, { binding: 1, resource: { buffer } }],
    }),
  );
  pass.dispatchWorkgroups(Math.max(1, Math.min(4096, Math.ceil(words / 256))));
  pass.end();
  gpu.queue.submit([enc.finish()]);
  u.destroy();
}

// ---- CPU twin (for tests) ----

function mix(x: number): number {
  let h = x >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Word `w` of a param as numbers: the u32 for "bits", else the one or two values it holds (before f16/f32 rounding). */
export function syntheticWord(kind: FillKind, seed: number, w: number): number[] {
  const a = mix(seed ^ mix(2 * w)), b = mix(seed ^ mix(2 * w + 1));
  const unit = (x: number) => Math.floor(x / 256) / 16777216;
  switch (kind) {
    case "bits":
      return [a];
    case "scale":
      return [0.002 + 0.008 * unit(a), 0.002 + 0.008 * unit(b)];
    case "norm":
      return [0.95 + 0.1 * unit(a), 0.95 + 0.1 * unit(b)];
    case "small":
      return [0.02 * unit(a) - 0.01, 0.02 * unit(b) - 0.01];
    case "f32small":
      return [0.02 * unit(a) - 0.01];
    case "f32norm":
      return [0.95 + 0.1 * unit(a)];
  }
}
