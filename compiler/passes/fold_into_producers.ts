/**
 * Two folds of batched decode's and prompts' extra dispatches into the kernels beside them:
 *
 * - `fold_sum_splits`: a `sum_splits` (no residual; a bias only into attention_decode) whose
 *   sums only an add_rms_norm or an attention_decode reads goes: that kernel reads the kSplit
 *   matmul's partial sums and adds them up itself (add_rms_norm's `splits`, attention_decode's
 *   `qkvSplits`, and `qkvBias` for the bias: Qwen's qkv).
 * - `q8_writers`: a `quantize_q8` whose x only it reads goes: x's producer (rms_norm,
 *   add_rms_norm, attention_merge, a matmul of the few-rows kernel: batched decode's gate_up)
 *   writes the codes itself (`outCodes`), so the normed, attended or gated row never
 *   round-trips through memory as f32.
 *
 * WebGPU targets (where split_k and q8_codes make these nodes); after them.
 * @module
 */
import {
  foldedSplitsError,
  type KernelSpec,
  q8CodesError,
  q8OutWidth,
} from "../codegen/contract.ts";
import type { IrFunction, Node } from "../ir/graph.ts";
import { rowsKernelTakes } from "../codegen/webgpu/matmul.ts";
import { type Pass, readers, rewrite, writers } from "./pass.ts";

/** Whether value `id` is a temp read by exactly the node at `user`. */
function onlyReader(fn: IrFunction, id: number, user: number): boolean {
  const rs = readers(fn, id);
  return fn.values[id].kind === "temp" && rs.length === 1 && rs[0] === user;
}

export const foldSumSplits: Pass = {
  name: "fold_sum_splits",
  flag: "fold_sum_splits",
  run(fn) {
    const replace = new Map<number, Node>(), drop = new Set<number>();
    fn.nodes.forEach((n, i) => {
      const s = n.spec;
      if (s.op !== "sum_splits" || s.residual) return;
      const [u] = readers(fn, n.args.out);
      // (a reader already folded into, from its other operand, keeps that fold)
      if (u === undefined || !onlyReader(fn, n.args.out, u) || replace.has(u)) return;
      const user = fn.nodes[u];
      const us = user.spec;
      let spec: KernelSpec, args: Record<string, number>;
      if (
        us.op === "add_rms_norm" && !s.bias && !us.splits && us.hidden === s.width &&
        user.rows === n.rows
      ) {
        // the partial sums as b (a + b = b + a: the other operand moves to a)
        const other = user.args.a === n.args.out ? user.args.b : user.args.a;
        if (other === n.args.out) return;
        spec = { ...us, splits: s.splits, ...(s.splitRows ? { splitRows: s.splitRows } : {}) };
        args = { ...user.args, a: other, b: n.args.part };
      } else if (
        us.op === "attention_decode" && !us.qkvSplits && !us.qkvBias &&
        user.args.qkv === n.args.out && (us.heads + 2 * us.kvHeads) * us.headDim === s.width &&
        user.rows === n.rows
      ) {
        spec = {
          ...us,
          qkvSplits: s.splits,
          ...(s.splitRows ? { qkvSplitRows: s.splitRows } : {}),
          ...(s.bias ? { qkvBias: s.bias } : {}),
        };
        args = {
          ...user.args,
          qkv: n.args.part,
          ...(s.bias ? { qkv_bias: n.args.bias } : {}),
        };
      } else return;
      if (foldedSplitsError(spec)) return;
      replace.set(u, { ...user, spec, args });
      drop.add(i);
    });
    return drop.size ? rewrite(fn, replace, drop) : fn;
  },
};

export const q8Writers: Pass = {
  name: "q8_writers",
  flag: "q8_writers",
  run(fn) {
    const replace = new Map<number, Node>(), drop = new Set<number>();
    fn.nodes.forEach((q, i) => {
      if (q.spec.op !== "quantize_q8" || !onlyReader(fn, q.args.x, i)) return;
      // x's one writer, through its out (a norm's sum, say, is not its out)
      const ws = writers(fn, q.args.x);
      const w = ws[0];
      if (ws.length !== 1 || fn.nodes[w].args.out !== q.args.x || replace.has(w)) return;
      const p = fn.nodes[w];
      // (q8OutWidth: the ops that can write codes, and their row width)
      const spec = { ...p.spec, outCodes: true } as KernelSpec;
      if (q8OutWidth(spec) !== q.spec.K || p.rows !== q.rows || q8CodesError(spec)) return;
      // (of the matmul kernels, only the few-rows one writes codes)
      if (spec.op === "matmul" && !rowsKernelTakes(spec)) return;
      replace.set(w, { ...p, spec, args: { ...p.args, out: q.args.out } });
      drop.add(i);
    });
    return drop.size ? rewrite(fn, replace, drop) : fn;
  },
};
