import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { isAlive, processStartTime, selfIdentity } from "./process_info.ts";

Deno.test("processStartTime() is stable for a live process and null once it has exited", async () => {
  const child = new Deno.Command("sleep", { args: ["5"] }).spawn();
  const t1 = await processStartTime(child.pid);
  ok(t1 !== null);
  assertEquals(await processStartTime(child.pid), t1);
  assertEquals(await isAlive(child.pid, t1!), true);
  assertEquals(await isAlive(child.pid, t1 + "0"), false);
  child.kill("SIGKILL");
  await child.status;
  assertEquals(await processStartTime(child.pid), null);
  assertEquals(await isAlive(child.pid, t1!), false);
});

Deno.test("selfIdentity() is this process", async () => {
  const me = await selfIdentity();
  assertEquals(me.pid, Deno.pid);
  assertEquals(await isAlive(me.pid, me.start), true);
});
