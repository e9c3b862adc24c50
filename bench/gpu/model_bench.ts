/**
 * One model shape at q4f16_1 on the GPU with synthetic weights: compile for this adapter, build
 * the runtime (pipeline creation timed, weights filled on the GPU), then
 * - prefill: one `prefill` call of the prompt (wall time with the logits read back, and GPU
 *   time of its dispatches replayed alone), with a per-kernel breakdown;
 * - raw decode at each batch: many `decode`/`batch_decode` steps queued through the runtime,
 *   bracketed by timestamp queries (GPU span) and timed on the host (wall), and one step's
 *   dispatches replayed back to back (kernel time), with a per-kernel breakdown; plus the
 *   sampler's dispatches alone;
 * - end to end through `KilnEngine` (continuous batching, device-side sampling, rounds of
 *   `stepsAhead` steps read back once): time to first token and decode tok/s.
 * @module
 */
import {
  groupLayout,
  type KernelSpec,
  PAGE_SIZE,
  TOP_P_SLICE,
  topPBucket,
} from "../../compiler/codegen/contract.ts";
import { compile } from "../../compiler/compile.ts";
import { kvLayerTokenBytes } from "../../compiler/metadata.ts";
import { targetFromAdapter } from "../../compiler/target.ts";
import { type Library, loadLibrary } from "../../engine/library.ts";
import { Model, type SeqChunk } from "../../engine/model.ts";
import { ModelRuntime } from "../../engine/runtime.ts";
import { benchEngine, type EngineFigures, tokens } from "./engine_bench.ts";
import type { BenchDevice, Trace } from "./bench_device.ts";
import type { GpuTimer } from "./gpu_timer.ts";
import { dispatchesPerLayer, kernelLabel, stepWeightBytes } from "./plan_figures.ts";
import { syntheticWeights } from "./synthetic_weights.ts";

export interface ModelBenchOptions {
  name: string;
  config: string | Record<string, unknown>;
  /** Optimisation flags for compile (default O2). */
  opt?: string;
  promptLen: number;
  decodeTokens: number;
  batches: number[];
  /** KilnEngine rounds to try (decode steps read back at once). */
  stepsAhead: number[];
  /** Queued raw decode steps per measurement. */
  rawSteps: number;
  /** Also time the decode step's replay with a boundary between steps (`replayBounded`),
   * twice each way, printed. */
  boundaries?: boolean;
  /** (short, long) pairs an engine figure (`benchEngine`). */
  pairs?: number;
}

/** GPU µs per kernel label (summed over its dispatches in one call, each alone); `bytes`: weight
 * bytes read; `stepUs`: what the step's back-to-back replay loses without that label's
 * dispatches (their cost inside the step: no pass of their own, overlap and barriers included). */
export type Breakdown = {
  label: string;
  count: number;
  us: number;
  bytes: number;
  stepUs?: number;
}[];

export interface DecodeFigures {
  batch: number;
  fn: string;
  /** GPU ms per step from timestamps around `rawSteps` queued steps (host gaps included). */
  queuedGpuMs: number;
  /** Host ms per step to queue them (inputs written, dispatches encoded, submitted). */
  queuedHostMs: number;
  /** Wall ms per step, from the first step queued to the last one's logits read back. */
  queuedWallMs: number;
  /** GPU ms of one step's dispatches replayed back to back (no host in between). */
  kernelMs: number;
  /** GPU ms of the sampler's dispatches for this batch (`sample`: softmax + top-p), replayed
   * alone: greedy rows and top_p 1 (one pass), and `sampleTopPMs` temperature 1, top_p 0.9
   * (the nucleus search). */
  sampleMs: number;
  sampleTopPMs: number;
  /** GPU ms of the greedy sampler (`sample_argmax`) for this batch. */
  argmaxMs: number;
  breakdown: Breakdown;
}

export interface ModelFigures {
  name: string;
  compileMs: number;
  kernels: number;
  pipelineMs: number;
  /** The same pipelines created a second time (the driver's shader cache warm). */
  pipelineWarmMs: number;
  runtimeCreateMs: number;
  paramBytes: number;
  /** Weight bytes a decode step reads (b = 1). */
  decodeWeightBytes: number;
  /** KV bytes a decode step reads per sequence at `kvTokens` (the middle of the decode). */
  kvBytesPerSeq: number;
  /** The KV cache's element type. */
  kvDtype: "f16" | "f32";
  kvTokens: number;
  dispatches: {
    decode: number;
    perLayer: number;
    layers: number;
    constant: number;
    sample: number;
  };
  prefill: { tokens: number; wallMs: number; kernelMs: number; breakdown: Breakdown };
  decode: DecodeFigures[];
  engine: EngineFigures[];
}

function breakdown(trace: Trace, us: number[]): Breakdown {
  const by = new Map<string, { count: number; us: number; bytes: number }>();
  trace.forEach((d, i) => {
    const spec = d.kernel.spec;
    const l = kernelLabel(spec);
    const e = by.get(l) ?? { count: 0, us: 0, bytes: 0 };
    e.count++;
    e.us += us[i] * 1000;
    if (spec.op === "matmul" && spec.weight.kind === "group") {
      const g = groupLayout(spec.weight, spec.K);
      e.bytes += spec.rows *
        (g.wordsPerRow * 4 + g.groups * (spec.weight.scaleDtype === "f16" ? 2 : 4));
    }
    by.set(l, e);
  });
  return [...by].map(([label, e]) => ({ label, ...e })).sort((a, b) => b.us - a.us);
}

/** A breakdown on one line: each label with its dispatches, µs alone and in the step. */
function breakdownLine(b: Breakdown): string {
  return b.map((e) => `${e.label} x${e.count} ${e.us.toFixed(0)} / ${e.stepUs?.toFixed(0) ?? "-"}`)
    .join("; ");
}

/**
 * Each label's cost inside the step: the trace replayed back to back (`reps` a pass, best of
 * two) with and without that label's dispatches. The data the removed kernels would have
 * written is stale, which leaves the other kernels' timing alone (no data-dependent control
 * flow in their loops but the positions, which the removal does not touch).
 */
async function inStep(
  dev: BenchDevice,
  timer: GpuTimer,
  trace: Trace,
  b: Breakdown,
  reps: number,
): Promise<void> {
  const best = async (t: Trace) =>
    Math.min(await dev.replay(timer, t, reps), await dev.replay(timer, t, reps));
  const full = await best(trace);
  for (const e of b) {
    const rest = trace.filter((d) => kernelLabel(d.kernel.spec) !== e.label);
    e.stepUs = (full - await best(rest)) * 1000;
  }
}

export async function benchModel(
  dev: BenchDevice,
  timer: GpuTimer,
  adapter: GPUAdapter,
  o: ModelBenchOptions,
  log: (s: string) => void,
): Promise<ModelFigures> {
  const dir = await Deno.makeTempDir({ prefix: "kiln-bench-gpu-" });
  let t0 = performance.now();
  await compile({
    config: o.config,
    quantization: "q4f16_1",
    target: targetFromAdapter(adapter),
    ...(o.opt ? { opt: o.opt } : {}),
    output: `${dir}/lib`,
    warn: () => {},
  });
  const compileMs = performance.now() - t0;
  const lib: Library = await loadLibrary(`${dir}/lib`);
  const md = lib.metadata;
  const maxB = Math.max(...o.batches);
  const perSeq = Math.ceil(
    (o.promptLen + o.decodeTokens + o.rawSteps + Math.max(0, ...o.stepsAhead) + 8) / PAGE_SIZE,
  );
  const numPages = (maxB + 1) * perSeq + 8;
  t0 = performance.now();
  const runtime = await ModelRuntime.create(lib, dev, syntheticWeights(), { numPages });
  await dev.read(runtime.kv[0], 4); // wait for the fills
  const runtimeCreateMs = performance.now() - t0;
  const pipelineMs = dev.pipelineMs.at(-1)!.ms;
  // the same pipelines again: a second start, with the driver's shader cache warm
  await dev.kernels(lib.plan.kernels.map((k) => ({ spec: k.spec as KernelSpec, source: k.wgsl! })));
  const pipelineWarmMs = dev.pipelineMs.at(-1)!.ms;
  log(`  ${o.name}: pipelines again (driver cache warm) in ${pipelineWarmMs.toFixed(0)} ms`);
  log(
    `  ${o.name}: compiled in ${compileMs.toFixed(0)} ms; runtime in ${
      runtimeCreateMs.toFixed(0)
    } ms (${lib.plan.kernels.length} pipelines in ${pipelineMs.toFixed(0)} ms)`,
  );
  // Model's constructor is private; the bench builds it around its own runtime (synthetic weights).
  const model = new (Model as unknown as new (lib: Library, rt: ModelRuntime) => Model)(
    lib,
    runtime,
  );
  const V = md.vocab_size;
  const kv = md.kv_cache;
  const per = dispatchesPerLayer(lib.plan, "decode");
  const figures: ModelFigures = {
    name: o.name,
    compileMs,
    kernels: lib.plan.kernels.length,
    pipelineMs,
    pipelineWarmMs,
    runtimeCreateMs,
    paramBytes: md.params.reduce(
      (a, p) => a + p.shape.reduce((x, y) => x * y, 1) * (p.dtype === "float16" ? 2 : 4),
      0,
    ),
    decodeWeightBytes: stepWeightBytes(lib.plan, md, "decode", 1),
    kvBytesPerSeq: kv.layers * kvLayerTokenBytes(md) * (o.promptLen + o.decodeTokens / 2),
    kvDtype: kv.dtype === "float16" ? "f16" : "f32",
    kvTokens: o.promptLen + o.decodeTokens / 2,
    dispatches: {
      decode: md.decode_dispatches,
      perLayer: per.maxPerLayer,
      layers: per.layers,
      constant: per.constant,
      sample: md.dispatches.sample ?? 0,
    },
    prefill: { tokens: o.promptLen, wallMs: 0, kernelMs: 0, breakdown: [] },
    decode: [],
    engine: [],
  };
  let nextSeq = 1_000_000;

  // ---- prefill ----
  const prompt = tokens(o.promptLen, V, 7);
  const prefillOnce = async () => {
    const seq = nextSeq++;
    const t = performance.now();
    let ran = "prefill"; // (or its _small variant, which Model.run picks for short calls)
    const trace = dev.record(() => {
      ran = model.run("prefill", [{ seq, tokens: prompt, start: 0 }]).fn;
    });
    await runtime.read(ran, "logits", V * 4);
    const ms = performance.now() - t;
    model.kv.release(seq);
    return { ms, trace };
  };
  // (the GPU's clock, idle through pipeline creation, brought up before the figures)
  await dev.warm(timer, (await prefillOnce()).trace, 1);
  const pre = await prefillOnce();
  figures.prefill.wallMs = pre.ms;
  figures.prefill.kernelMs = await dev.replay(timer, pre.trace, 2);
  figures.prefill.breakdown = breakdown(pre.trace, await dev.replayEach(timer, pre.trace));
  await inStep(dev, timer, pre.trace, figures.prefill.breakdown, 1);
  log(
    `  ${o.name}: prefill ${o.promptLen} tokens: wall ${pre.ms.toFixed(1)} ms, kernels ${
      figures.prefill.kernelMs.toFixed(1)
    } ms`,
  );
  log(
    `  ${o.name}: prefill by kernel, µs alone / in the step: ${
      breakdownLine(figures.prefill.breakdown)
    }`,
  );

  // ---- raw decode ----
  for (const b of o.batches) {
    const called = b === 1 ? "decode" : "batch_decode";
    const seqs = Array.from({ length: b }, () => nextSeq++);
    let prefilled = "prefill";
    for (const s of seqs) {
      prefilled =
        model.run("prefill", [{ seq: s, tokens: tokens(o.promptLen, V, s), start: 0 }]).fn;
    }
    await runtime.read(prefilled, "logits", 4);
    let pos = o.promptLen;
    // the function that runs (Model.run takes the _small variant where the batch fits it)
    const step = (): string =>
      model.run(
        called,
        seqs.map((seq, i): SeqChunk => ({ seq, tokens: [(pos * 31 + i) % V], start: pos })),
      ).fn;
    let fn = called;
    for (let i = 0; i < 3; i++, pos++) fn = step();
    await runtime.read(fn, "logits", 4);
    dev.submit();
    timer.begin();
    const t = performance.now();
    const rawSteps = b === 1 ? o.rawSteps : Math.max(4, o.rawSteps / 4);
    for (let i = 0; i < rawSteps; i++, pos++) step();
    dev.submit();
    const hostMs = performance.now() - t;
    const gpuMs = await timer.end();
    await runtime.read(fn, "logits", 4);
    const wallMs = performance.now() - t;
    const trace = dev.record(() => step());
    pos++;
    await runtime.read(fn, "logits", 4);
    await dev.warm(timer, trace, 10);
    const kernelMs = await dev.replay(timer, trace, 10);
    if (o.boundaries) {
      const modes = ["one", "passes", "submits", "writes", "copies"] as const;
      const runs: string[] = [];
      for (let k = 0; k < 2; k++) {
        for (const mode of modes) {
          runs.push((await dev.replayBounded(timer, trace, 16, mode)).toFixed(3));
        }
      }
      log(
        `  ${o.name}: ${called} b=${b} between steps (ms/step, two runs): ${
          modes.map((m, i) => `${m} ${runs[i]}, ${runs[i + modes.length]}`).join("; ")
        }`,
      );
    }
    const each = await dev.replayEach(timer, trace);
    // the sampler over this batch's logits, as the engine queues it: greedy rows at top_p 1,
    // then temperature 1 and top_p 0.9
    const sampler = async (temperature: number, topP: number) => {
      const trace = dev.record(() =>
        runtime.run(
          "sample",
          {
            indptr: new Uint32Array(b + 1),
            entries: new Uint8Array(16),
            params: new Float32Array(b * 4),
            temperature: new Float32Array(b).fill(temperature),
            top_p: new Float32Array(b).fill(topP),
            uniform: new Float32Array(b).fill(0.5),
          },
          { n: 1, s: 1, m: b },
          { logits: runtime.output(fn, "logits") },
        )
      );
      await runtime.read("sample", "tokens", 4);
      const ms = await dev.replay(timer, trace, 10);
      const parts = breakdown(trace, await dev.replayEach(timer, trace))
        .map((e) => `${e.label} ${e.us.toFixed(1)}`).join(", ");
      log(
        `  ${o.name}: sampler at temperature ${temperature}, top_p ${topP}: ${
          ms.toFixed(3)
        } ms; each kernel alone (µs): ${parts}`,
      );
      return ms;
    };
    const sampleMs = await sampler(0, 1);
    const sampleTopPMs = await sampler(1, 0.9);
    if (b === 1) {
      const row = new Float32Array(await runtime.read(fn, "logits", V * 4)); // [V]
      log(`  ${o.name}: the logits' row at temperature 1, top_p 0.9: ${nucleusOf(row, 0.9)}`);
    }
    // the one-kernel greedy path (all-greedy batches)
    const argmaxTrace = dev.record(() =>
      runtime.run("sample_argmax", {}, { n: 1, s: 1, m: b }, {
        logits: runtime.output(fn, "logits"),
      })
    );
    const argmaxMs = await dev.replay(timer, argmaxTrace, 10);
    for (const s of seqs) model.kv.release(s);
    const d: DecodeFigures = {
      batch: b,
      fn,
      queuedGpuMs: gpuMs / rawSteps,
      queuedHostMs: hostMs / rawSteps,
      queuedWallMs: wallMs / rawSteps,
      kernelMs,
      sampleMs,
      sampleTopPMs,
      argmaxMs,
      breakdown: breakdown(trace, each),
    };
    await inStep(dev, timer, trace, d.breakdown, 10);
    figures.decode.push(d);
    log(
      `  ${o.name}: raw ${fn} b=${b}: kernels ${kernelMs.toFixed(3)} ms/step, queued GPU ${
        d.queuedGpuMs.toFixed(3)
      }, host ${d.queuedHostMs.toFixed(3)}, wall ${d.queuedWallMs.toFixed(3)}, sampler ${
        sampleMs.toFixed(3)
      } (top_p 0.9: ${sampleTopPMs.toFixed(3)}, argmax ${argmaxMs.toFixed(3)})`,
    );
    // (the report's tables show the first model's; this line every model's, for A/B calls)
    log(
      `  ${o.name}: ${fn} b=${b} by kernel, µs alone / in the step: ${breakdownLine(d.breakdown)}`,
    );
  }

  figures.engine = await benchEngine(model, o, log);
  await Deno.remove(dir, { recursive: true });
  return figures;
}

/** What the top-p draw has to find in a row of logits at temperature 1: the nucleus' size at
 * `topP`, and how many tokens share the `top_p_hist` bucket of its edge (the candidates
 * `sample_top_p` sorts; more than 2,048 take a second level) over how many slices. */
export function nucleusOf(logits: Float32Array, topP: number): string {
  const max = logits.reduce((a, b) => Math.max(a, b), -Infinity);
  const e = Float64Array.from(logits, (x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  const p = Float32Array.from(e, (x) => x / sum);
  const bits = new Uint32Array(p.buffer);
  const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b);
  let mass = 0, kept = 0;
  while (kept < p.length && mass < topP) mass += p[order[kept++]];
  const edge = topPBucket(bits[order[kept - 1]]);
  const slices = new Set<number>();
  let n = 0;
  for (let c = 0; c < p.length; c++) {
    if (p[c] > 0 && topPBucket(bits[c]) === edge) n++, slices.add(Math.floor(c / TOP_P_SLICE));
  }
  return `${kept} of ${p.length} tokens kept (max p ${p[order[0]].toExponential(2)}); ` +
    `${n} share the edge's bucket, over ${slices.size} slices`;
}
