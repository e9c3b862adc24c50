import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { normalizeConfig } from "../config/model_config.ts";
import { OPT_PRESETS, parseOptFlags } from "../config/opt_flags.ts";
import { getQuantization } from "../quant/mod.ts";
import { getModel } from "../models/registry.ts";
import type { IrFunction } from "../ir/graph.ts";
import { IrVerifyError, verifyFunction } from "../ir/verify.ts";
import { PHASES, runPipeline } from "./pipeline.ts";
import { decodeSplitLayout, SPLIT_ALIGN } from "./split_kv_decode.ts";
import { foldSumSplits } from "./fold_into_producers.ts";
import { CPU_TARGET, GENERIC_WEBGPU } from "../target.ts";
import { PACKED_DOT, q8OutWidth } from "../codegen/contract.ts";
import { assertThrows } from "../../tests/assert.ts";
import { rowsDefaults } from "../codegen/webgpu/matmul_rows.ts";

const RAW = {
  model_type: "llama",
  hidden_size: 64,
  intermediate_size: 160,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 128,
  vocab_size: 512,
};

/** The generic WebGPU target with the packed int8 dot product (the q8 passes act). */
const Q8_WEBGPU = { ...GENERIC_WEBGPU, features: [...GENERIC_WEBGPU.features, PACKED_DOT] };

function build(quant = "q4f16_1", raw: Record<string, unknown> = RAW): IrFunction[] {
  const config = normalizeConfig(raw);
  return getModel("llama").build(config, getQuantization(quant)).functions;
}

function run(
  opt: string,
  target = CPU_TARGET,
  quant = "q4f16_1",
  raw: Record<string, unknown> = RAW,
) {
  const config = normalizeConfig(raw);
  const modelDtype = getQuantization(quant).modelDtype;
  return runPipeline(build(quant, raw), { config, target, flags: parseOptFlags(opt), modelDtype });
}

const ops = (fn: IrFunction) => fn.nodes.map((n) => n.spec.op);
const decode = (fns: IrFunction[]) => fns.find((f) => f.name === "decode")!;

Deno.test("runPipeline() at O0 keeps every op unfused and the IR verifies", () => {
  const fns = run("O0");
  const d = decode(fns);
  // per layer: norm, dequant+matmul (qkv), rope, kv_append, attention, dequant+matmul (o), add,
  // norm, dequant+matmul (gate_up), silu_mul, dequant+matmul (down), add = 16; then the final
  // norm and dequant+matmul (lm_head: a decode function's rows are its logit rows, no take_rows)
  assertEquals(d.nodes.length, 1 + 2 * 16 + 1 + 2);
  ok(!ops(d).includes("take_rows"));
  ok(ops(fns.find((f) => f.name === "prefill")!).includes("take_rows"));
  ok(ops(d).includes("dequantize") && ops(d).includes("rope") && ops(d).includes("silu_mul"));
});

Deno.test("runPipeline() at O2 fuses dequantize, add+norm, gate/up+SiLU and RoPE+KV append+attention", () => {
  const fns = run("O2");
  const d = decode(fns);
  const o: string[] = ops(d);
  for (
    const gone of [
      "dequantize",
      "rope",
      "kv_append",
      "rope_kv_append",
      "attention",
      "silu_mul",
      "add",
    ]
  ) {
    ok(!o.includes(gone), `${gone} left after fusion`);
  }
  for (const fused of ["add_rms_norm", "attention_decode", "attention_merge"]) {
    ok(o.includes(fused), `${fused} missing`);
  }
  ok(d.nodes.some((n) => n.spec.op === "matmul" && n.spec.epilogue === "silu_mul"));
  // embed, rms_norm, then per layer 8 (qkv, attention_decode, attention_merge, o, add_norm,
  // gate_up, down, add_norm with the next layer's (or the final) norm), then lm_head
  assertEquals(d.nodes.length, 2 + 2 * 8 + 1);
  // prefill functions keep rope_kv_append + attention; every decode function splits
  for (const fn of fns) {
    const has = (op: string) => fn.nodes.some((n) => n.spec.op === op);
    if (fn.name.includes("prefill")) {
      ok(has("rope_kv_append") && has("attention") && !has("attention_decode"), fn.name);
    }
    if (fn.name.includes("decode")) ok(has("attention_decode") && !has("attention"), fn.name);
  }
});

Deno.test("each fusion flag switches its own fusion only", () => {
  const d = decode(run("fuse_gate_up_silu=0"));
  ok(ops(d).includes("silu_mul"));
  ok(ops(d).includes("attention_decode"));
  const e = decode(run("fuse_rope_kv_append=0"));
  ok(ops(e).includes("rope") && ops(e).includes("kv_append") && !ops(e).includes("rope_kv_append"));
  ok(ops(e).includes("attention") && !ops(e).includes("attention_decode"));
  const f = decode(run("split_kv_decode=0"));
  ok(
    ops(f).includes("rope_kv_append") && ops(f).includes("attention") &&
      !ops(f).includes("attention_merge"),
  );
  assertEquals(f.nodes.length, 2 + 2 * 8 + 1);
});

Deno.test("split_kv_decode gives a decode row enough splits and plans their partials as temps", () => {
  // hidden 64, 4 heads of 16, 2 KV heads, context 128 (the RAW config)
  for (const fn of run("O2").filter((f) => f.rowPerSequence)) {
    const node = fn.nodes.find((n) => n.spec.op === "attention_decode")!;
    if (node.spec.op !== "attention_decode") throw new Error("no attention_decode");
    const want = decodeSplitLayout(fn.bounds.n, 4, 2, 128);
    assertEquals([node.spec.splits, node.spec.splitRows], [want.splits, want.splitRows]);
    const partO = fn.values[node.args.part_o];
    assertEquals([partO.kind, partO.shape], ["temp", ["n", want.splits * 4 * 16]]);
    ok(partO.slot !== undefined && fn.values[node.args.part_lse].slot !== undefined);
  }
  // Llama-3-8B heads: 32 rows' worth of splits (256 workgroups of 8 KV heads): 32 a row for
  // decode, up to 8 a row (and 1 at 32 rows) for 32-row batches, up to 2 for 128-row ones;
  // never more than the context has SPLIT_ALIGN positions
  assertEquals(decodeSplitLayout(1, 32, 8, 8192), { splits: 32, splitRows: 32 });
  assertEquals(decodeSplitLayout(32, 32, 8, 8192), { splits: 8, splitRows: 32 });
  assertEquals(decodeSplitLayout(128, 32, 8, 8192), { splits: 2, splitRows: 32 });
  assertEquals(decodeSplitLayout(1, 32, 8, 2 * SPLIT_ALIGN).splits, 2);
  // 7 query heads a KV head: 2 workgroups a KV head's split
  assertEquals(decodeSplitLayout(1, 14, 2, 32768), { splits: 64, splitRows: 64 });
});

Deno.test("memory_planning shares slots between values whose lifetimes do not overlap", () => {
  const planned = run("O2").find((f) => f.name === "prefill")!;
  const unplanned = run("memory_planning=0").find((f) => f.name === "prefill")!;
  const sum = (f: IrFunction) => f.slots!.reduce((a, b) => a + b, 0);
  ok(sum(planned) < sum(unplanned) / 2, `${sum(planned)} vs ${sum(unplanned)}`);
  // no two temps live at once share a slot
  const last = new Map<number, number>(), first = new Map<number, number>();
  planned.nodes.forEach((n, i) =>
    Object.values(n.args).forEach((id) => (first.has(id) || first.set(id, i), last.set(id, i)))
  );
  const temps = planned.values.filter((v) => v.kind === "temp" && v.slot !== undefined);
  for (const a of temps) {
    for (const b of temps) {
      if (a.id >= b.id || a.slot !== b.slot) continue;
      const overlap = first.get(a.id)! <= last.get(b.id)! && first.get(b.id)! <= last.get(a.id)!;
      // touching at one node is an overlap too (a kernel reads inputs while writing outputs)
      ok(!overlap, `${a.name} and ${b.name} share slot ${a.slot} while both live`);
    }
  }
});

Deno.test("split_large_weights splits weights past the binding limit into row ranges", () => {
  const tiny = {
    ...GENERIC_WEBGPU,
    limits: { ...GENERIC_WEBGPU.limits, maxStorageBufferBindingSize: 16 * 1024 },
  };
  const d = decode(run("O2", tiny, "q0f32"));
  // lm_head: 512 × 64 f32 = 128 KiB → 8 parts of ≤ 16 KiB; embed likewise
  const head = d.nodes.filter((n) => n.spec.op === "matmul" && n.spec.N === 512);
  assertEquals(head.length, 8);
  assertEquals(head.map((n) => n.spec.op === "matmul" && n.spec.rowStart), [
    0,
    64,
    128,
    192,
    256,
    320,
    384,
    448,
  ]);
  assertEquals(d.nodes.filter((n) => n.spec.op === "embed").length, 8);
});

Deno.test("verifyFunction() rejects a node with a missing binding and a read before write", () => {
  const d = decode(run("O2"));
  const broken = {
    ...d,
    nodes: d.nodes.map((n, i) => (i === 1 ? { ...n, args: { x: n.args.x } } : n)),
  };
  assertThrows(() => verifyFunction(broken), IrVerifyError, "declares");
  const swapped = { ...d, nodes: [d.nodes[1], d.nodes[0], ...d.nodes.slice(2)] };
  assertThrows(() => verifyFunction(swapped), IrVerifyError, "before anything writes it");
});

Deno.test("the phases are listed in order and every pass has a name", () => {
  assertEquals(PHASES.map((p) => p.name), ["fusion", "cleanup", "target", "memory"]);
  for (const p of PHASES) for (const pass of p.passes) ok(pass.name.length > 0);
  ok(OPT_PRESETS.O0.memory_planning === false);
});

Deno.test("fuse_norm_matmul folds the norms around q8 matmuls into them (embed, o_proj, down → qkv, gate_up, lm_head)", () => {
  const d = decode(run("fuse_norm_matmul=1", Q8_WEBGPU));
  const mm = d.nodes.filter((n) => n.spec.op === "matmul");
  const out = mm.filter((n) => n.spec.op === "matmul" && n.spec.normOut);
  const into = mm.filter((n) => n.spec.op === "matmul" && n.spec.norm);
  // writers: the embedding, o_proj and down of both layers; readers: both qkvs, both gate_ups
  // and lm_head
  const embed = d.nodes.filter((n) => n.spec.op === "embed");
  assertEquals(embed.length, 1);
  ok(embed[0].spec.op === "embed" && embed[0].spec.normOut);
  assertEquals([out.length, into.length], [4, 5]);
  for (const n of out) {
    ok(n.spec.op === "matmul" && n.spec.epilogue === "add" && n.args.residual !== undefined);
  }
  // the readers take what the writers wrote
  const writers = [...embed, ...out];
  assertEquals(new Set(into.map((n) => n.args.x)), new Set(writers.map((n) => n.args.out_w)));
  assertEquals(
    new Set(into.map((n) => n.args.x_ssq)),
    new Set(writers.map((n) => n.args.out_ssq)),
  );
  ok(!ops(d).includes("add_rms_norm") && !ops(d).includes("rms_norm"));
  assertEquals(d.nodes.length, 1 + 2 * 6 + 1);
  // prefill keeps its norms (its matmuls are tiled, not q8 GEMVs)
  const prefill = run("fuse_norm_matmul=1", Q8_WEBGPU).find((f) => f.name === "prefill")!;
  ok(ops(prefill).includes("rms_norm") && ops(prefill).includes("take_rows"));
  // without q8 matmuls nothing is folded
  assertEquals(decode(run("fuse_norm_matmul=1", GENERIC_WEBGPU)).nodes.length, 2 + 2 * 8 + 1);
});

Deno.test("q8_unit_layout stores the q8 matmuls' x rows unit-major, writer and readers together", () => {
  const d = decode(run("O2", Q8_WEBGPU));
  const byValue = (id: number) => d.nodes.filter((n) => Object.values(n.args).includes(id));
  const readersOf = d.nodes.filter((n) => n.spec.op === "matmul" && n.spec.xUnits);
  // every matmul: qkv, o_proj, gate_up and down of both layers, and lm_head
  assertEquals(readersOf.length, 9);
  for (const c of readersOf) {
    const w = byValue(c.args.x).filter((n) => n !== c);
    assertEquals(w.length, 1);
    const s = w[0].spec;
    ok(
      (s.op === "matmul" || s.op === "attention_merge" || s.op === "embed") && s.outUnits,
      JSON.stringify(s),
    );
    if (c.spec.op === "matmul" && c.spec.norm) {
      ok((s.op === "matmul" || s.op === "embed") && s.normOut);
      assertEquals(w[0].args.out_ssq, c.args.x_ssq);
    }
  }
  assertEquals(
    d.nodes.filter((n) =>
      (n.spec.op === "matmul" || n.spec.op === "attention_merge" || n.spec.op === "embed") &&
      n.spec.outUnits
    )
      .map((n) =>
        n.spec.op === "matmul" ? (n.spec.normOut ? "normOut" : n.spec.epilogue) : n.spec.op
      ),
    [
      "embed",
      "attention_merge",
      "normOut",
      "silu_mul",
      "normOut",
      "attention_merge",
      "normOut",
      "silu_mul",
      "normOut",
    ],
  );
  // off: nothing unit-major; without q8 matmuls: nothing either
  for (
    const fn of [decode(run("q8_unit_layout=0", Q8_WEBGPU)), decode(run("O2", GENERIC_WEBGPU))]
  ) {
    ok(!fn.nodes.some((n) => "xUnits" in n.spec || "outUnits" in n.spec));
  }
});

/** Llama-3-8B widths, one layer. */
const RAW_8B_LAYER = {
  ...RAW,
  hidden_size: 4096,
  intermediate_size: 14336,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  num_hidden_layers: 1,
  vocab_size: 128256,
  max_position_embeddings: 1024,
};

Deno.test("split_k splits the q8 tiles' K by the dispatch's rows where their grid is thin", () => {
  // 132 compute units (H100): ranges such that row blocks x column blocks x ranges about fill
  // them (kSplitRows = tile rows x 132 / column blocks), at most 4 and at most one row block's
  const h100 = {
    ...Q8_WEBGPU,
    limits: { ...Q8_WEBGPU.limits, maxComputeWorkgroupStorageSize: 49152 },
    computeUnits: 132,
  };
  const splits = (fn: IrFunction) =>
    fn.nodes.flatMap((n) =>
      n.spec.op === "matmul" && n.spec.maxRows > 32
        ? [`${n.spec.N}x${n.spec.K}:${n.spec.kSplit ?? 1}/${n.spec.kSplitRows ?? "-"}`]
        : []
    );
  const fns = run("O2", h100, "q4f16_1", RAW_8B_LAYER);
  const fn = (name: string) => fns.find((f) => f.name === name)!;
  // prefill (512 rows): qkv in 64-row tiles, 48 column blocks (2 ranges up to 88 rows: one
  // row block's); o_proj and down 32 column blocks of 128-row tiles (4 ranges up to 132 rows,
  // 2 up to 264, 1 at 512); gate_up (silu_mul) and lm_head (1,002 column blocks) whole
  assertEquals(splits(fn("prefill")), [
    "6144x4096:2/176",
    "4096x4096:4/528",
    "28672x4096:1/-",
    "4096x14336:4/528",
  ]);
  // the 128-row batch function: 64-row tiles but gate_up's and lm_head's (two row ranges past
  // the 128 MiB binding limit)
  assertEquals(splits(fn("batch_decode")), [
    "6144x4096:2/176",
    "4096x4096:4/264",
    "28672x4096:1/-",
    "4096x14336:4/264",
    "128256x4096:1/-",
    "128256x4096:1/-",
  ]);
  // the partial sums are added up where they are read, only the dispatch's ranges (the
  // matmul's kSplitRows): prefill's qkv by a sum_splits before rope_kv_append, the batch
  // function's by attention_decode; o_proj's and down's by the add_rms_norm after them
  const sums = (name: string) =>
    fn(name).nodes.flatMap((n) =>
      n.spec.op === "sum_splits"
        ? [`sum_splits:${n.spec.splits}/${n.spec.splitRows}`]
        : n.spec.op === "add_rms_norm" && n.spec.splits
        ? [`add_rms_norm:${n.spec.splits}/${n.spec.splitRows}`]
        : n.spec.op === "attention_decode" && n.spec.qkvSplits
        ? [`attention_decode:${n.spec.qkvSplits}/${n.spec.qkvSplitRows}`]
        : []
    );
  assertEquals(sums("prefill"), ["sum_splits:2/176", "add_rms_norm:4/528", "add_rms_norm:4/528"]);
  assertEquals(sums("batch_decode"), [
    "attention_decode:2/176",
    "add_rms_norm:4/264",
    "add_rms_norm:4/264",
  ]);
  // a target that does not say its compute units: the tiles as they were
  assertEquals(
    run("O2", Q8_WEBGPU, "q4f16_1", RAW_8B_LAYER).flatMap((f) => f.nodes).filter((n) =>
      n.spec.op === "matmul" && n.spec.maxRows > 32 && n.spec.kSplit
    ).length,
    0,
  );
});

Deno.test("split_k splits K of the 8-32-row matmuls whose weights have few rows, on WebGPU only", () => {
  // (the sums left to sum_splits: fold_sum_splits has its own test)
  const fns = run("fold_sum_splits=0", GENERIC_WEBGPU, "q4f16_1", RAW_8B_LAYER);
  const splits = (fn: IrFunction) =>
    fn.nodes.flatMap((n) =>
      n.spec.op === "matmul" ? [`${n.spec.N}x${n.spec.K}:${n.spec.kSplit ?? 1}`] : []
    );
  // prefill_small (32 rows): qkv, o_proj and down in 4 ranges; gate_up and lm_head (two row
  // ranges past the 128 MiB binding limit) whole
  const small = fns.find((f) => f.name === "prefill_small")!;
  assertEquals(splits(small), [
    "6144x4096:4",
    "4096x4096:4",
    "28672x4096:1",
    "4096x14336:4",
    "128256x4096:1",
    "128256x4096:1",
  ]);
  // each split matmul feeds one sum_splits that writes what the matmul wrote before
  const sums = small.nodes.filter((n) => n.spec.op === "sum_splits");
  assertEquals(sums.length, 3);
  for (const s of sums) {
    const mm = small.nodes.find((n) => n.args.out === s.args.part)!;
    ok(mm.spec.op === "matmul" && mm.spec.kSplit === 4 && mm.spec.epilogue === "none");
    ok(s.spec.op === "sum_splits" && s.spec.splits === 4 && s.spec.width === mm.spec.N);
  }
  // 512 rows (prefill: the tiled shape), one row (decode) and the CPU target: nothing split
  const prefill = fns.find((f) => f.name === "prefill")!;
  assertEquals(prefill.nodes.filter((n) => n.spec.op === "sum_splits").length, 0);
  assertEquals(decode(fns).nodes.filter((n) => n.spec.op === "sum_splits").length, 0);
  const cpu = run("O2", CPU_TARGET, "q4f16_1", RAW_8B_LAYER);
  assertEquals(cpu.flatMap((f) => f.nodes).filter((n) => n.spec.op === "sum_splits").length, 0);
  // with the packed int8 dot product, q8 activations in every few-rows matmul of the batched
  // functions (BATCHED_Q8), never folded with the norms (the q8 GEMV's business); lm_head (two
  // parts) reads one logit row here (m = 1), a q8 GEMV as before
  const q8small = run("O2", Q8_WEBGPU, "q4f16_1", RAW_8B_LAYER).find((f) =>
    f.name === "prefill_small"
  )!;
  assertEquals(
    q8small.nodes.flatMap((n) => n.spec.op === "matmul" && n.spec.xq8 ? [n.spec.N] : []),
    [6144, 4096, 28672, 4096, 128256, 128256],
  );
  ok(q8small.nodes.every((n) => !(n.spec.op === "matmul" && (n.spec.norm || n.spec.normOut))));
  // split as without codes (at 4 columns a lane); then on x's codes qkv and o_proj (128
  // units of K) take 2 columns a lane, down (448 units) keeps 4 (gate_up: 2 outputs of 2
  // weight rows)
  assertEquals(splits(q8small), splits(small));
  assertEquals(
    q8small.nodes.flatMap((n) =>
      n.spec.op === "matmul" && n.spec.xCodes ? [rowsDefaults(n.spec).colsPerLane] : []
    ),
    [2, 2, 2, 4],
  );
  // Llama-3.2-1B widths: down's K (8192: 256 units, long) in 4 ranges of 64 units, not 8 of
  // 32; qkv and o_proj (64 units) in 4 of 16
  const oneB = run("O2", Q8_WEBGPU, "q4f16_1", {
    ...RAW_8B_LAYER,
    hidden_size: 2048,
    intermediate_size: 8192,
  }).find((f) => f.name === "prefill_small")!;
  assertEquals(splits(oneB).slice(0, 4), [
    "3072x2048:4",
    "2048x2048:4",
    "16384x2048:1",
    "2048x8192:4",
  ]);
  // split_k=0: nothing split
  const off = run("split_k=0", GENERIC_WEBGPU, "q4f16_1", RAW_8B_LAYER);
  assertEquals(off.flatMap((f) => f.nodes).filter((n) => n.spec.op === "sum_splits").length, 0);
});

/** Qwen2.5-0.5B widths (a Llama layer). */
const QWEN_05B_WIDTHS = {
  ...RAW_8B_LAYER,
  hidden_size: 896,
  intermediate_size: 4864,
  num_attention_heads: 14,
  num_key_value_heads: 2,
};

Deno.test("q8_codes: the few-rows and tiled q8 matmuls read x quantised once, before them", () => {
  // (every quantize_q8 kept: q8_writers has its own test)
  const fns = run("q8_writers=0", Q8_WEBGPU, "q4f16_1", RAW_8B_LAYER);
  // prefill (512 rows, the q8 tiles) and prefill_small (32 rows, the few-rows kernel): every
  // q8 matmul of more than one row (lm_head reads the last row only: a q8 GEMV) reads xCodes,
  // written by a quantize_q8 of its x before it
  for (const name of ["prefill", "prefill_small"]) {
    const fn = fns.find((f) => f.name === name)!;
    const mms = fn.nodes.filter((n) => n.spec.op === "matmul" && n.spec.xq8 && n.spec.maxRows > 1);
    assertEquals(mms.length, 4, `${name}: ${mms.length} q8 matmuls`);
    for (const mm of mms) {
      ok(mm.spec.op === "matmul" && mm.spec.xCodes, `${name}: a q8 matmul without xCodes`);
      const q = fn.nodes.find((n) => n.args.out === mm.args.x)!;
      ok(q.spec.op === "quantize_q8" && q.spec.K === mm.spec.K, `${name}: x not from quantize_q8`);
      ok(fn.nodes.indexOf(q) < fn.nodes.indexOf(mm));
    }
    const quants = fn.nodes.filter((n) => n.spec.op === "quantize_q8").length;
    assertEquals(quants, new Set(mms.map((n) => n.args.x)).size);
  }
  // Qwen2.5-0.5B widths: qkv and o_proj (K 896, short) split into 4 ranges of 7 units,
  // a column a lane; gate_up has too few column blocks for the few-rows shape and cannot
  // split (silu_mul): on codes the few-rows kernel takes it too
  const small = run("O2", Q8_WEBGPU, "q4f16_1", QWEN_05B_WIDTHS).find((f) =>
    f.name === "prefill_small"
  )!;
  const mm = small.nodes.filter((n) => n.spec.op === "matmul" && n.spec.maxRows > 1);
  assertEquals(mm.map((n) => n.spec.op === "matmul" && !!n.spec.xCodes), [true, true, true, true]);
  assertEquals(mm.map((n) => n.spec.op === "matmul" ? n.spec.kSplit ?? 1 : 0), [4, 4, 1, 8]);
  // (down, 152 units split 8 ways, 2 columns a lane)
  assertEquals(mm.map((n) => n.spec.op === "matmul" ? rowsDefaults(n.spec).colsPerLane : 0), [
    1,
    1,
    2,
    2,
  ]);
  const noCodes = run("q8_codes=0", Q8_WEBGPU, "q4f16_1", QWEN_05B_WIDTHS).find((f) =>
    f.name === "prefill_small"
  )!;
  // (without codes gate_up stays an f32 GEMV: the q8 GEMV spills at 16 rows; the split ones
  // quantise x in the few-rows kernel)
  assertEquals(
    noCodes.nodes.filter((n) => n.spec.op === "matmul" && n.spec.maxRows > 1).map((n) =>
      n.spec.op === "matmul" && !!n.spec.xq8
    ),
    [true, true, false, true],
  );
  // decode (one row: the q8 GEMV, its own x path): none; the CPU target and q8_codes=0: none
  const count = (fs: IrFunction[]) =>
    fs.flatMap((f) => f.nodes).filter((n) => n.spec.op === "quantize_q8").length;
  assertEquals(count([decode(fns)]), 0);
  assertEquals(count(run("O2", CPU_TARGET, "q4f16_1", RAW_8B_LAYER)), 0);
  assertEquals(count(run("q8_codes=0", Q8_WEBGPU, "q4f16_1", RAW_8B_LAYER)), 0);
  assertEquals(count(run("q8_codes=0;q8_writers=0", Q8_WEBGPU, "q4f16_1", RAW_8B_LAYER)), 0);
  ok(count(fns) > 0);
});

Deno.test("fold_sum_splits and q8_writers: the split sums and the q8 rows move into the kernels beside them", () => {
  const on = run("O2", Q8_WEBGPU, "q4f16_1", RAW_8B_LAYER);
  const off = run("fold_sum_splits=0;q8_writers=0", Q8_WEBGPU, "q4f16_1", RAW_8B_LAYER);
  const fn = (fs: IrFunction[], name: string) => fs.find((f) => f.name === name)!;
  const count = (f: IrFunction, op: string) => f.nodes.filter((n) => n.spec.op === op).length;
  // batched decode, a layer: qkv (split), attention_decode summing its splits, attention_merge
  // writing o_proj's codes, o_proj (split), add_rms_norm summing o_proj's splits and writing
  // gate_up's codes, gate_up writing down's codes (the few-rows kernel), down (split),
  // add_rms_norm as before; 15 dispatches a layer before
  const bd = fn(on, "batch_decode_small");
  const layer = bd.nodes.slice(
    bd.nodes.findIndex((n) => n.spec.op === "matmul"),
    bd.nodes.findIndex((n) => n.spec.op === "matmul" && n.spec.N === 4096 && n.spec.K === 14336) +
      2,
  );
  assertEquals(layer.map((n) => n.spec.op), [
    "matmul",
    "attention_decode",
    "attention_merge",
    "matmul",
    "add_rms_norm",
    "matmul",
    "matmul",
    "add_rms_norm",
  ]);
  assertEquals(count(fn(off, "batch_decode_small"), "sum_splits"), 3);
  assertEquals(count(bd, "sum_splits"), 0);
  const decodeNode = layer[1], norm = layer[4];
  ok(decodeNode.spec.op === "attention_decode" && decodeNode.spec.qkvSplits === 4);
  ok(decodeNode.args.qkv === layer[0].args.out);
  ok(norm.spec.op === "add_rms_norm" && norm.spec.splits === 4 && norm.spec.outCodes);
  ok(norm.args.b === layer[3].args.out && norm.args.out === layer[5].args.x);
  ok(layer[2].spec.op === "attention_merge" && layer[2].spec.outCodes);
  const gateUp = layer[5];
  ok(gateUp.spec.op === "matmul" && gateUp.spec.epilogue === "silu_mul" && gateUp.spec.outCodes);
  ok(gateUp.args.out === layer[6].args.x);
  // every function: each q8 matmul reading codes reads them from a quantize_q8 or a writer
  // with outCodes of its K, written before it; each folded sum reads a kSplit matmul's out
  for (const f of on) {
    for (const [i, n] of f.nodes.entries()) {
      if (n.spec.op === "matmul" && n.spec.xCodes) {
        const w = f.nodes.findIndex((p) => p.args.out === n.args.x);
        ok(w >= 0 && w < i && q8OutWidth(f.nodes[w].spec) === n.spec.K, `${f.name}: codes`);
      }
      const folded = n.spec.op === "add_rms_norm"
        ? n.spec.splits && n.args.b
        : n.spec.op === "attention_decode" && n.spec.qkvSplits && n.args.qkv;
      if (folded) {
        const mm = f.nodes.find((p) => p.args.out === folded)!;
        ok(
          mm.spec.op === "matmul" &&
            mm.spec.kSplit ===
              (n.spec.op === "add_rms_norm"
                ? n.spec.splits
                : n.spec.op === "attention_decode" && n.spec.qkvSplits),
        );
      }
    }
  }
  // prompts: the norms write the codes of qkv and gate_up (prefill: the q8 tiles) and the
  // first layer's rms_norm too; the o_proj's x comes from attention (no writer): quantize_q8;
  // down's from gate_up, which writes them in prefill_small (the few-rows kernel), not in
  // prefill (the tiles)
  for (const [name, left] of [["prefill", [4096, 14336]], ["prefill_small", [4096]]] as const) {
    const q = fn(on, name).nodes.filter((n) => n.spec.op === "quantize_q8").map((n) =>
      n.spec.op === "quantize_q8" && n.spec.K
    );
    assertEquals(q, left, name);
    assertEquals(count(fn(off, name), "quantize_q8"), 4, name);
  }
  // decode (the q8 GEMV's own x path) and the CPU target: nothing to fold
  assertEquals(
    fn(on, "decode").nodes.map((n) => n.spec.op),
    fn(off, "decode").nodes.map((n) => n.spec.op),
  );
  const cpu = run("O2", CPU_TARGET, "q4f16_1", RAW_8B_LAYER);
  ok(
    cpu.flatMap((f) => f.nodes).every((n) =>
      !("outCodes" in n.spec) && !("splits" in n.spec && n.spec.op === "add_rms_norm")
    ),
  );
});

Deno.test("kv_f16: the cache in f16 where the model's dtype is f16, every kernel that touches it told so", () => {
  const cacheOps = ["kv_append", "rope_kv_append", "attention", "attention_decode"];
  const kvOf = (fns: IrFunction[]) => {
    const values = fns.flatMap((f) => f.values.filter((v) => v.kind === "kv").map((v) => v.dtype));
    const specs = fns.flatMap((f) => f.nodes.filter((n) => cacheOps.includes(n.spec.op)));
    const said = specs.map((n) => ("kvDtype" in n.spec ? n.spec.kvDtype : undefined) ?? "f32");
    ok(specs.length > 0 && values.length > 0);
    return new Set([...values, ...said]);
  };
  assertEquals(kvOf(run("O2", Q8_WEBGPU, "q4f16_1")), new Set(["f16"]));
  assertEquals(kvOf(run("O2", CPU_TARGET, "q0f16")), new Set(["f16"]));
  // rope, kv_append and attention unfused
  const unfused = "fuse_rope_kv_append=0;split_kv_decode=0";
  assertEquals(kvOf(run(unfused, CPU_TARGET, "q4f16_1")), new Set(["f16"]));
  ok(
    run(unfused, CPU_TARGET, "q4f16_1").some((f) => f.nodes.some((n) => n.spec.op === "kv_append")),
  );
  // f32 models, the flag off, O0: an f32 cache
  assertEquals(kvOf(run("O2", CPU_TARGET, "q4f32_1")), new Set(["f32"]));
  assertEquals(kvOf(run("kv_f16=0", Q8_WEBGPU, "q4f16_1")), new Set(["f32"]));
  assertEquals(kvOf(run("O0", CPU_TARGET, "q4f16_1")), new Set(["f32"]));
});

Deno.test("fold_sum_splits folds a sum_splits with qkv's bias into attention_decode (qkvBias), not into a norm", () => {
  // Qwen2.5-0.5B widths with its q/k/v bias: batched decode's qkv splits K (short K), and its
  // sums with the bias go into attention_decode, whose qkv_bias is the bias the matmul had
  const qwen = { ...QWEN_05B_WIDTHS, model_type: "qwen2" };
  const on = run("O2", Q8_WEBGPU, "q4f16_1", qwen);
  const off = run("fold_sum_splits=0", Q8_WEBGPU, "q4f16_1", qwen);
  const bd = on.find((f) => f.name === "batch_decode_small")!;
  const count = (f: IrFunction, op: string) => f.nodes.filter((n) => n.spec.op === op).length;
  assertEquals(count(bd, "sum_splits"), 0);
  const offBd = off.find((f) => f.name === "batch_decode_small")!;
  const sum = offBd.nodes.find((n) => n.spec.op === "sum_splits" && n.spec.bias)!;
  ok(sum, "a sum_splits with a bias without the fold");
  const att = bd.nodes.find((n) => n.spec.op === "attention_decode")!;
  ok(att.spec.op === "attention_decode" && att.spec.qkvSplits === 4);
  ok(sum.spec.op === "sum_splits" && att.spec.qkvBias === sum.spec.bias);
  assertEquals(bd.values[att.args.qkv_bias].name, offBd.values[sum.args.bias].name);
  const mm = bd.nodes.find((n) => n.args.out === att.args.qkv)!;
  ok(mm.spec.op === "matmul" && mm.spec.kSplit === 4 && mm.spec.bias === null);
});

Deno.test("fold_sum_splits folds one sum_splits into an add_rms_norm whose both operands are split sums", () => {
  // a hand-made function: two kSplit partial-sum rows, each summed, then added and normed
  const H = 64;
  const v = (id: number, name: string, width: number) => ({
    id,
    name,
    kind: (id < 2 ? "input" : id > 3 ? "output" : "temp") as "input" | "output" | "temp",
    shape: ["n" as const, width],
    dtype: "f32" as const,
  });
  const fn: IrFunction = {
    name: "f",
    bounds: { n: 16, s: 1, m: 1 },
    values: [
      v(0, "pa", 2 * H),
      v(1, "pb", 2 * H),
      v(2, "a", H),
      v(3, "b", H),
      v(4, "sum", H),
      v(5, "out", H),
      { id: 6, name: "w", kind: "param", shape: [H], dtype: "f32" },
    ],
    nodes: [
      {
        spec: { op: "sum_splits", width: H, splits: 2, bias: null, residual: false },
        rows: "n",
        args: { part: 0, out: 2 },
      },
      {
        spec: { op: "sum_splits", width: H, splits: 2, bias: null, residual: false },
        rows: "n",
        args: { part: 1, out: 3 },
      },
      {
        spec: { op: "add_rms_norm", hidden: H, eps: 1e-5, weightDtype: "f32" },
        rows: "n",
        args: { a: 2, b: 3, w: 6, sum: 4, out: 5 },
      },
    ],
  };
  const config = normalizeConfig(RAW);
  const out = foldSumSplits.run(fn, { config, target: Q8_WEBGPU, flags: parseOptFlags("O2") });
  verifyFunction(out);
  assertEquals(out.nodes.map((n) => n.spec.op), ["sum_splits", "add_rms_norm"]);
  const [kept, norm] = out.nodes;
  ok(norm.spec.op === "add_rms_norm" && norm.spec.splits === 2);
  // the first is folded (the norm reads its partials), the second kept: it still writes the
  // operand the norm reads whole
  assertEquals([kept.args.part, kept.args.out], [1, 3]);
  assertEquals([norm.args.a, norm.args.b], [3, 0]);
});

Deno.test("fold_attention_merge: each attention_merge goes into its attention_decode where the target allows its bindings", () => {
  // (GENERIC_WEBGPU allows 8 storage buffers: the folded decode binds 10)
  const wide = {
    ...Q8_WEBGPU,
    limits: { ...Q8_WEBGPU.limits, maxStorageBuffersPerShaderStage: 16 },
  };
  const on = run("O2", wide, "q4f16_1", RAW_8B_LAYER);
  const off = run("fold_attention_merge=0", wide, "q4f16_1", RAW_8B_LAYER);
  for (const name of ["decode", "batch_decode_small", "batch_decode"]) {
    const f = on.find((x) => x.name === name)!, g = off.find((x) => x.name === name)!;
    const merges = g.nodes.filter((n) => n.spec.op === "attention_merge");
    ok(merges.length > 0, `${name}: merges without the fold`);
    ok(!f.nodes.some((n) => n.spec.op === "attention_merge"), `${name}: a merge left`);
    assertEquals(f.nodes.length, g.nodes.length - merges.length, name);
    const decodes = f.nodes.filter((n) => n.spec.op === "attention_decode");
    const counts = f.values.filter((v) => v.kind === "state");
    assertEquals(counts.length, 1, `${name}: one counts value for the function`);
    for (const [i, d] of decodes.entries()) {
      const m = merges[i];
      if (d.spec.op !== "attention_decode" || m.spec.op !== "attention_merge") throw new Error();
      // the merge's out and its layout move into the decode; the counts are the state value
      assertEquals(d.args.out, m.args.out);
      assertEquals(!!d.spec.merge?.outCodes, !!m.spec.outCodes);
      assertEquals(!!d.spec.merge?.outUnits, !!m.spec.outUnits);
      assertEquals(d.args.counts, counts[0].id);
      // the log-sum-exps a KV head a cache line
      const lse = f.values[d.args.part_lse];
      assertEquals(
        lse.shape[1],
        d.spec.kvHeads * Math.ceil((d.spec.splits * d.spec.heads) / d.spec.kvHeads / 32) * 32,
      );
    }
  }
  // the CPU target and the generic WebGPU target keep their merges
  for (const target of [CPU_TARGET, Q8_WEBGPU]) {
    ok(
      run("O2", target, "q4f16_1", RAW_8B_LAYER).some((f) =>
        f.nodes.some((n) => n.spec.op === "attention_merge")
      ),
    );
  }
});
