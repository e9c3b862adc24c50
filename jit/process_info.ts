/**
 * Process identity for lock ownership: a pid alone is reused by the OS, so an owner is the pair
 * (pid, start time). On Linux the start time is field 22 of `/proc/<pid>/stat` (clock ticks
 * since boot); elsewhere `ps -o lstart=` gives it to the second.
 * @module
 */

/** Start time of process `pid` as an opaque string, or null when no such process exists. */
export async function processStartTime(pid: number): Promise<string | null> {
  if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`invalid pid ${pid}`);
  if (Deno.build.os === "linux") {
    let stat: string;
    try {
      stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
    // "pid (comm) state ppid ..." — comm may hold spaces and parentheses: split after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const state = fields[0];
    if (state === "Z" || state === "X") return null; // zombie / dead: it holds nothing
    return `linux:${fields[19]}`;
  }
  const out = await new Deno.Command("ps", { args: ["-o", "lstart=", "-p", String(pid)] })
    .output();
  const text = new TextDecoder().decode(out.stdout).trim();
  return out.success && text ? `ps:${text}` : null;
}

let own: { pid: number; start: string } | undefined;

/** This process's identity (pid and start time). */
export async function selfIdentity(): Promise<{ pid: number; start: string }> {
  if (!own) {
    const start = await processStartTime(Deno.pid);
    if (start === null) throw new Error(`cannot read the start time of this process (${Deno.pid})`);
    own = { pid: Deno.pid, start };
  }
  return own;
}

/** True when the process `pid` that started at `start` is still running. */
export async function isAlive(pid: number, start: string): Promise<boolean> {
  return (await processStartTime(pid)) === start;
}
