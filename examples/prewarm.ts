/**
 * Prewarm, then serve: ask a running Kiln server to compile (and convert the weights of) a model
 * ahead of traffic, following its progress as server-sent events. A later load of the same model
 * and options is a cache hit.
 *
 *   npx -y deno@2.9.6 task serve                 # terminal 1
 *   deno run -A examples/prewarm.ts examples/models/example q4f32_1   # terminal 2
 */
const base = Deno.env.get("KILN_URL") ?? "http://127.0.0.1:8000";
const headers = { "content-type": "application/json", authorization: `Bearer ${Deno.env.get("KILN_API_KEY") ?? "none"}` };
const [model = "examples/models/example", quantization = "q4f16_1"] = Deno.args;
const res = await fetch(`${base}/v1/prewarm`, { method: "POST", headers, body: JSON.stringify({ model: await Deno.realPath(model), quantization }) });
const job = await res.json();
console.log(res.status, job);
if (!res.ok) Deno.exit(1);
const events = await fetch(`${base}/v1/prewarm/${job.id}?stream=true`, { headers });
for await (const text of events.body!.pipeThrough(new TextDecoderStream())) Deno.stdout.writeSync(new TextEncoder().encode(text));
