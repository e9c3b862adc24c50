import { compile } from "../compiler/compile.ts";
const t0 = performance.now();
const r = await compile({ config: Deno.args[0], quantization: "q4f16_1", target: "webgpu", output: "/tmp/prof-lib", warn: () => {} });
console.log(r.timings, performance.now() - t0, r.metadata.prefill_chunk_size, r.metadata.max_batch_size);
