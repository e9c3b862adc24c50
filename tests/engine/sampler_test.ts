/**
 * The library's sampling functions at a vocabulary large enough for the split softmax
 * (`softmax_stats` + `softmax_temp` with blocks): the probabilities `softmax_with_temperature`
 * returns, and the token the `sample` function draws at top_p 1, against float64, on the CPU
 * target and on WebGPU when an adapter exists. The kernels are checked alone by the
 * conformance suite; this checks the functions' wiring (the stats between the two kernels).
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { compile } from "../../compiler/compile.ts";
import { resolveTarget } from "../../compiler/target.ts";
import { loadLibrary } from "../../engine/library.ts";
import { ModelRuntime } from "../../engine/runtime.ts";
import { createCpuDevice } from "../../engine/devices/cpu.ts";
import { createWebGpuDevice } from "../../engine/devices/webgpu.ts";
import { samplerInputs } from "../../engine/sampler_inputs.ts";
import { GREEDY } from "../../engine/sampling_params.ts";
import { Rng } from "../conformance/helpers.ts";

const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
const V = 20011;

/** A one-layer Llama whose vocabulary spans four softmax blocks. */
const CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: V,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 128,
  tie_word_embeddings: false,
};

/** float64 softmax of row r of x at temperature t (one-hot at the first max for t <= 0). */
function softmax64(x: Float32Array, r: number, t: number): Float64Array {
  const row = x.subarray(r * V, (r + 1) * V);
  let m = -Infinity, at = 0;
  row.forEach((v, c) => v > m && (m = v, at = c));
  const out = new Float64Array(V);
  if (!(t > 0)) {
    out[at] = 1;
    return out;
  }
  let z = 0;
  row.forEach((v, c) => z += out[c] = Math.exp((v - m) / t));
  return out.map((e) => e / z);
}

for (const target of ["cpu", "webgpu"] as const) {
  Deno.test({
    name: `sampling functions (${target}) at V=${V}: split softmax probabilities, top_p 1 draw`,
    ignore: target === "webgpu" && !adapter,
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "kiln-sampler-test-" });
      const device = target === "cpu" ? createCpuDevice() : (await createWebGpuDevice())!;
      try {
        await compile({
          config: CONFIG,
          quantization: "q0f32",
          target: target === "cpu" ? "cpu" : await resolveTarget("auto"),
          output: `${dir}/lib`,
          warn: () => {},
        });
        const lib = await loadLibrary(`${dir}/lib`);
        const ops = lib.plan.functions.sample.steps.map((s) => lib.plan.kernels[s.k].spec.op);
        ok(ops.includes("softmax_stats"), `the sample function runs ${ops.join(", ")}`);
        const zeros = {
          kind: "mlc" as const,
          tensor: (_: string, info: { shape: number[] }) =>
            Promise.resolve(new Uint8Array(info.shape.reduce((a, b) => a * b, 4))),
        };
        const rt = await ModelRuntime.create(lib, device, zeros, { numPages: 4 });
        const rng = new Rng(5);
        const temps = [0.7, 0, 1.3];
        const m = temps.length;
        const x = rng.normals(m * V, 3); // [m, V]
        x[V + 11] = x[V + 15000] = 40; // row 1 (greedy): a tie across blocks, 11 wins
        for (let c = 0; c < 5000; c++) x[2 * V + c] = -Infinity; // row 2: a masked block
        const logits = device.createBuffer(m * V * 4, "logits");
        device.write(logits, x);
        rt.run("softmax_with_temperature", { temperature: Float32Array.from(temps) }, {
          n: 1,
          s: 1,
          m,
        }, { logits });
        const probs = new Float32Array(
          await rt.read("softmax_with_temperature", "probs", m * V * 4),
        );
        temps.forEach((t, r) => {
          const ref = softmax64(x, r, t);
          let worst = 0, max = 0;
          ref.forEach((p, c) => {
            worst = Math.max(worst, Math.abs(probs[r * V + c] - p));
            max = Math.max(max, p);
          });
          ok(worst <= 1e-5 * max, `row ${r} (t=${t}): max |p - ref| ${worst} of max p ${max}`);
        });
        // sample at top_p 1: the first token whose cumulative mass in index order passes u
        const us = [0.3, 0.9, 0.55];
        const cap = (rt.fn("sample").inputs.find((i) => i.name === "entries")!.shape[0] as number) /
          4;
        const rows = temps.map((t, r) => ({
          sampling: { ...GREEDY, temperature: t },
          counts: new Map<number, number>(),
          promptSet: new Set<number>(),
          uniform: us[r],
        }));
        rt.run("sample", samplerInputs(rows, cap), { n: 1, s: 1, m }, { logits });
        const tokens = Array.from(new Uint32Array(await rt.read("sample", "tokens", m * 4)));
        const want = temps.map((t, r) => {
          const p = softmax64(x, r, t);
          let acc = 0;
          for (let c = 0; c < V; c++) if ((acc += p[c]) > us[r]) return c;
          return V - 1;
        });
        // (a draw within rounding of a cumulative edge could go either way: none is here)
        assertEquals(tokens, want);
      } finally {
        device.destroy();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
