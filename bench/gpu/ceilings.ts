/**
 * The adapter's ceilings, measured as `/work/shared/gpu/read_bandwidth.ts` and `f16_and_fma.ts`
 * do: the best of several reduce-read kernels over one large buffer (timestamp queries, 10
 * back-to-back dispatches), the GPU and CPU cost of one tiny dispatch, and vec4 `fma` loops in
 * f32 and f16.
 * @module
 */
import type { GpuTimer } from "./gpu_timer.ts";

export interface Ceilings {
  /** Bytes of the buffer the read kernels sweep. */
  readBytes: number;
  /** Best read bandwidth, GB/s (1e9 bytes/s). */
  readGBs: number;
  /** The read kernel that reached it. */
  readBest: string;
  dispatchGpuUs: number;
  dispatchCpuUs: number;
  fmaF32Tflops: number;
  fmaF16Tflops: number | null;
  /**
   * `dot4I8Packed` rate in tera-ops/s (each call 4 multiplies and 4 adds, the accumulate
   * included), or null where the WGSL feature `packed_4x8_integer_dot_product` is missing.
   */
  dp4aTops: number | null;
}

function pipeline(gpu: GPUDevice, code: string): GPUComputePipeline {
  return gpu.createComputePipeline({
    layout: "auto",
    compute: { module: gpu.createShaderModule({ code }), entryPoint: "main" },
  });
}

function group(gpu: GPUDevice, pl: GPUComputePipeline, buffers: GPUBuffer[]): GPUBindGroup {
  return gpu.createBindGroup({
    layout: pl.getBindGroupLayout(0),
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
}

/** `bytes` is the read buffer's size (clamped to the binding limit); `sms` scales the workgroup
 * counts; `dp4a`: the target has `dot4I8Packed` (measured only then). */
export async function measureCeilings(
  gpu: GPUDevice,
  timer: GpuTimer,
  opts: { bytes: number; sms?: number; dp4a: boolean },
): Promise<Ceilings> {
  const sms = opts.sms ?? 132;
  const size = Math.floor(
    Math.min(opts.bytes, gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize) / 256,
  ) * 256;
  const src = gpu.createBuffer({ size, usage: GPUBufferUsage.STORAGE });
  const out = gpu.createBuffer({ size: 1 << 22, usage: GPUBufferUsage.STORAGE });
  // fill with non-zero words so no driver can skip the reads
  const fill = pipeline(
    gpu,
    `@group(0) @binding(0) var<storage, read_write> x: array<vec4<u32>>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) n: vec3u) {
  for (var i = g.x; i < arrayLength(&x); i += n.x * 256u) { x[i] = vec4u(i * 2654435761u, i ^ 0x9e3779b9u, i * 7u + 1u, i) & vec4u(0x3f7fffffu); } }`,
  );
  await timer.pass((p) => {
    p.setPipeline(fill);
    p.setBindGroup(0, group(gpu, fill, [src]));
    p.dispatchWorkgroups(4096);
  });
  let readGBs = 0, readBest = "";
  for (const [unroll, wgsz] of [[1, 256], [4, 256], [8, 256], [4, 128], [8, 128], [4, 512]]) {
    if (wgsz > gpu.limits.maxComputeInvocationsPerWorkgroup) continue;
    const loads = Array.from({ length: unroll }, (_, k) => `let v${k} = x[i + ${k}u * stride];`)
      .join(" ");
    const pl = pipeline(
      gpu,
      `@group(0) @binding(0) var<storage, read> x: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> o: array<u32>;
@compute @workgroup_size(${wgsz}) fn main(@builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) w: vec3u, @builtin(num_workgroups) n: vec3u) {
  let N = arrayLength(&x); let stride = n.x * ${wgsz}u; var acc = vec4u(0u);
  var i = w.x * ${wgsz}u + l.x;
  loop { if (i + ${unroll - 1}u * stride >= N) { break; }
    ${loads}
    acc ^= ${
        Array.from({ length: unroll }, (_, k) => `v${k}`).join(" ^ ")
      }; i += ${unroll}u * stride; }
  o[(w.x * ${wgsz}u + l.x) & 0xfffffu] = acc.x ^ acc.y ^ acc.z ^ acc.w; }`,
    );
    const bg = group(gpu, pl, [src, out]);
    for (const wg of [sms * 4, sms * 8, sms * 16, sms * 32, sms * 64]) {
      const run = (reps: number) =>
        timer.pass((p) => {
          p.setPipeline(pl);
          p.setBindGroup(0, bg);
          for (let r = 0; r < reps; r++) p.dispatchWorkgroups(Math.min(wg, 65535));
        });
      await run(2);
      const gbs = size / ((await run(10)) / 10) / 1e6;
      if (gbs > readGBs) {
        readGBs = gbs,
          readBest = `unroll ${unroll}, ${wgsz} threads, ${Math.min(wg, 65535)} groups`;
      }
    }
  }
  // one tiny dispatch: GPU time back to back, CPU time to encode and submit
  const tiny = pipeline(
    gpu,
    `@group(0) @binding(0) var<storage, read_write> o: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) { o[g.x] += 1u; }`,
  );
  const tg = group(gpu, tiny, [out]);
  const gpuMs = await timer.pass((p) => {
    p.setPipeline(tiny);
    p.setBindGroup(0, tg);
    for (let i = 0; i < 1000; i++) p.dispatchWorkgroups(1);
  });
  const t0 = performance.now();
  for (let k = 0; k < 20; k++) {
    const e = gpu.createCommandEncoder();
    const p = e.beginComputePass();
    for (let i = 0; i < 500; i++) {
      p.setPipeline(tiny);
      p.setBindGroup(0, tg);
      p.dispatchWorkgroups(1);
    }
    p.end();
    gpu.queue.submit([e.finish()]);
  }
  const cpuUs = (performance.now() - t0) / 20 / 500 * 1000;
  await gpu.queue.onSubmittedWorkDone();
  // GPU ms of one dispatch of a compute-bound loop kernel (after a warm-up, mean of 3)
  const loopMs = async (pl: GPUComputePipeline, wgs: number) => {
    const bg = group(gpu, pl, [out]);
    const run = (reps: number) =>
      timer.pass((p) => {
        p.setPipeline(pl);
        p.setBindGroup(0, bg);
        for (let r = 0; r < reps; r++) p.dispatchWorkgroups(wgs);
      });
    await run(1);
    return (await run(3)) / 3;
  };
  const fma = async (ty: "f32" | "f16") => {
    const iters = 4096, wgs = Math.min(sms * 64, 65535);
    const pl = pipeline(
      gpu,
      `${ty === "f16" ? "enable f16;" : ""}
@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3u) {
  var a = vec4<${ty}>(${ty}(0.5) + ${ty}(f32(g.x & 7u)) * ${ty}(0.001)); var b = a + vec4<${ty}>(${ty}(0.5)); var c = a * ${ty}(0.25); var d = b * ${ty}(0.75);
  let m = vec4<${ty}>(${ty}(0.999)); let k = vec4<${ty}>(${ty}(0.001));
  for (var i = 0u; i < ${iters}u; i++) { a = fma(a, m, k); b = fma(b, m, k); c = fma(c, m, k); d = fma(d, m, k); }
  o[g.x & 0xffffu] = f32((a + b + c + d).x); }`,
    );
    return wgs * 256 * iters * 4 * 4 * 2 / await loopMs(pl, wgs) / 1e9;
  };
  // Eight independent chains a thread, each call's operand its previous result (nothing to hoist).
  // (with `add`, each call's result plus a constant, as a dot-product accumulation compiles)
  const dp4a = async (add: boolean) => {
    const iters = 4096, wgs = Math.min(sms * 64, 65535);
    const chains = [0, 1, 2, 3, 4, 5, 6, 7];
    const pl = pipeline(
      gpu,
      `@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3u) {
  ${chains.map((c) => `var a${c} = g.x * ${2 * c + 1}u + ${c}u;`).join(" ")}
  let m = 0x01ff7f03u + (g.x & 1u); ${add ? "let k = i32(g.x & 3u) + 1;" : ""}
  for (var i = 0u; i < ${iters}u; i++) {
    ${
        chains.map((c) => `a${c} = bitcast<u32>(dot4I8Packed(a${c}, m)${add ? " + k" : ""});`).join(
          " ",
        )
      }
  }
  o[g.x & 0xffffu] = f32(${chains.map((c) => `a${c}`).join(" ^ ")}); }`,
    );
    return wgs * 256 * iters * chains.length * 8 / await loopMs(pl, wgs) / 1e9;
  };
  const dp4aBoth = async () => {
    const [plain, acc] = [await dp4a(false), await dp4a(true)];
    console.log(`  dot4I8Packed: ${plain.toFixed(1)} TOP/s alone, ${acc.toFixed(1)} with an add`);
    return Math.max(plain, acc);
  };
  const result: Ceilings = {
    readBytes: size,
    readGBs,
    readBest,
    dispatchGpuUs: gpuMs,
    dispatchCpuUs: cpuUs,
    fmaF32Tflops: await fma("f32"),
    fmaF16Tflops: gpu.features.has("shader-f16") ? await fma("f16") : null,
    dp4aTops: opts.dp4a ? await dp4aBoth() : null,
  };
  src.destroy();
  out.destroy();
  return result;
}
