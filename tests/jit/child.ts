/**
 * Spawning `resolve_child.ts` processes and reading their JSON lines.
 * @module
 */
const SCRIPT = new URL("./resolve_child.ts", import.meta.url).pathname;

export interface ChildOutput {
  code: number;
  events: { stage: string; status: string; message: string }[];
  result?: { key: string; origin: string; hello: string; weights?: string };
  error?: { name: string; message: string; stage?: string; cause?: string };
}

export function childArgs(o: Record<string, string | number>): string[] {
  return [
    "run",
    "-A",
    SCRIPT,
    ...Object.entries(o).flatMap(([k, v]) => [`--${k}`, String(v)]),
  ];
}

export function parseLines(text: string, code: number): ChildOutput {
  const out: ChildOutput = { code, events: [] };
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    const o = JSON.parse(line);
    if (o.event) out.events.push(o.event);
    if (o.result) out.result = o.result;
    if (o.error) out.error = o.error;
  }
  return out;
}

/** Run a child to completion. */
export async function runChild(o: Record<string, string | number>): Promise<ChildOutput> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: childArgs(o),
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const parsed = parseLines(new TextDecoder().decode(r.stdout), r.code);
  if (!parsed.result && !parsed.error) {
    throw new Error(
      `child printed no result (code ${r.code}): ${new TextDecoder().decode(r.stderr)}`,
    );
  }
  return parsed;
}
