/**
 * Child process for the JIT's multi-process tests: resolves one model with the fixture
 * compiler and prints one JSON line per progress event, then a final {"result": …} or
 * {"error": …} line. Exit code 0 on success, 1 on failure.
 *
 * deno run -A tests/jit/resolve_child.ts --root R --model M --count C [--delay-ms N]
 *   [--policy ON|OFF|REDO|READONLY] [--quantization Q] [--real yes]
 * @module
 */
import { parseArgs } from "node:util";
import { resolve } from "../../jit/mod.ts";
import type { JitPolicy } from "../../jit/options.ts";
import { fixtureCompiler } from "./fixture_compiler.ts";

const { values: a } = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string" },
    model: { type: "string" },
    count: { type: "string" },
    "delay-ms": { type: "string", default: "0" },
    policy: { type: "string", default: "ON" },
    quantization: { type: "string", default: "q4f16_1" },
    /** Use the real compiler (compiler/mod.ts) instead of the fixture. */
    real: { type: "string", default: "no" },
    /** Make the fixture compiler fail in this stage. */
    "fail-stage": { type: "string" },
  },
});
const out = (o: unknown) => console.log(JSON.stringify(o));
try {
  const r = await resolve({
    model: a.model!,
    quantization: a.quantization,
    cacheRoot: a.root!,
    policy: a.policy as JitPolicy,
    target: "cpu",
    compiler: a.real === "yes" ? undefined : fixtureCompiler({
      countFile: a.count!,
      delayMs: Number(a["delay-ms"]),
      failStage: a["fail-stage"],
    }),
    onProgress: (e) => out({ event: e }),
  });
  const hello = typeof r.lib.module.hello === "function"
    ? (r.lib.module.hello as () => string)()
    : Object.keys(r.lib.module).sort().join(",");
  out({ result: { key: r.lib.key, origin: r.lib.origin, hello, weights: r.weights?.origin } });
} catch (e) {
  const err = e as Error & { stage?: string };
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  out({ error: { name: err.name, message: err.message, stage: err.stage, cause } });
  Deno.exit(1);
}
