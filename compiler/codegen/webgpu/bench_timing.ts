/**
 * Wall-clock GPU timing for the kernel benches (`matmul_bench.ts`, `attention_bench.ts`).
 * @module
 */

/** Whether this process has kept the GPU busy long enough for its clock to come up. */
let warmed = false;
/** Seconds of work that bring an idle H100's clock (345 MHz) to full speed (~0.2 s). */
const WARM_S = 0.3;

/**
 * GPU seconds per dispatch of `run()`. A round encodes n dispatches, then times only the
 * submit-and-wait (`sync`); n grows until a round takes >= 100 ms (unless `quick`), and the
 * result is (round(2n) - round(n)) / n, which cancels the fixed wait cost (Deno polls every 10 ms).
 * The first call in a process first runs `run()` for `WARM_S` (the first figure of a bench read
 * high before: the GPU's clock was still coming up).
 */
export async function timeIt(
  run: () => void,
  sync: () => Promise<unknown>,
  quick = false,
): Promise<number> {
  const round = async (n: number) => {
    for (let i = 0; i < n; i++) run();
    const t0 = performance.now();
    await sync();
    return (performance.now() - t0) / 1000;
  };
  await round(2);
  if (!warmed) {
    const from = performance.now();
    for (let n = 2; performance.now() - from < WARM_S * 1000; n = Math.min(2 * n, 1 << 16)) {
      await round(n);
    }
    warmed = true;
  }
  let n = quick ? 2 : 16;
  while (!quick && await round(n) < 0.1 && n < 1 << 16) n *= 4;
  const one = await round(n);
  const two = await round(2 * n);
  return (two - one) / n;
}
