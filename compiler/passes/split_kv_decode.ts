/**
 * In a function that runs one row per sequence (decode), rope_kv_append(qkv) → q, cache and
 * attention(q) → out become attention_decode(qkv) → cache, partials over `splits` ranges of
 * the positions, and attention_merge(partials) → out: the same two dispatches, but a row's
 * attention is spread over up to `splits` times as many workgroups (flash-decoding), fewer
 * the more rows a dispatch has (`splitRows`). Prefill
 * functions keep rope_kv_append + attention: their rows already give enough workgroups.
 * @module
 */
import type { Node } from "../ir/graph.ts";
import { addTemp, type Pass, readers, rewrite } from "./pass.ts";
import { pow2Floor } from "../codegen/contract.ts";

/** Workgroups a decode attention dispatch aims for, whatever its rows: two per SM of an H100
 * (132) at 256 threads. Measured there with Llama-3-8B heads (BENCHMARKS.md): 256 working
 * workgroups were best or within noise of it at 1, 4 and 16 rows and 576 and 4096 positions. */
export const DECODE_WORKGROUPS = 256;
/** At most this many splits a row. */
export const MAX_SPLITS = 64;
/** A split's length is a multiple of this many positions (one pass of the WebGPU kernel's key
 * loop at head dim 128), so short contexts use fewer splits rather than shorter ones. */
export const SPLIT_ALIGN = 32;
/** The grid (rows x splits) at the row bound is at most this many times `DECODE_WORKGROUPS`:
 * splits past a dispatch's share return at once, which is nearly free but not quite. */
const GRID_FACTOR = 8;

/** Split layout of `attention_decode` for a function of up to `rows` rows with `kvHeads` KV heads
 * (a row's split is about one workgroup per KV head and 4 query heads), within `context`
 * positions: `splitRows` rows' worth of splits shared by the dispatch's rows, at most `splits`
 * a row. */
export function decodeSplitLayout(
  rows: number,
  heads: number,
  kvHeads: number,
  context: number,
): { splits: number; splitRows: number } {
  const perSplit = kvHeads * Math.ceil(heads / kvHeads / 4);
  const splitRows = pow2Floor(DECODE_WORKGROUPS / perSplit);
  const most = Math.min(MAX_SPLITS, splitRows, Math.ceil(context / SPLIT_ALIGN));
  return { splits: pow2Floor(Math.min(most, (GRID_FACTOR * splitRows) / rows)), splitRows };
}

export const splitKvDecode: Pass = {
  name: "split_kv_decode",
  flag: "split_kv_decode",
  run(fn, ctx) {
    if (!fn.rowPerSequence) return fn;
    const replace = new Map<number, Node>();
    const values = [...fn.values];
    fn.nodes.forEach((app, i) => {
      if (app.spec.op !== "rope_kv_append") return;
      const users = readers(fn, app.args.q_out);
      const att = fn.nodes[users[0]];
      if (users.length !== 1 || att.spec.op !== "attention" || att.args.q !== app.args.q_out) {
        return;
      }
      if (att.args.cache !== app.args.cache || att.args.positions !== app.args.positions) return;
      const { heads, kvHeads, headDim, invFreq } = app.spec;
      const { window, scale } = att.spec;
      const rows = typeof app.rows === "number" ? app.rows : fn.bounds[app.rows];
      const context = window > 0
        ? Math.min(window, ctx.config.context_window_size)
        : ctx.config.context_window_size;
      const { splits, splitRows } = decodeSplitLayout(rows, heads, kvHeads, context);
      const layout = { window, splits, splitRows, splitAlign: SPLIT_ALIGN };
      const name = fn.values[att.args.out].name;
      const partO = addTemp(values, `${name}_part_o`, app.rows, splits * heads * headDim); // [n, splits * H * D]
      const partLse = addTemp(values, `${name}_part_lse`, app.rows, splits * heads); // [n, splits * H]
      const { q_out: _, ...paged } = app.args; // qkv, positions, tok_seq, page_indptr, page_indices, cache
      replace.set(i, {
        spec: { op: "attention_decode", heads, kvHeads, headDim, scale, invFreq, ...layout },
        rows: app.rows,
        args: { ...paged, part_o: partO, part_lse: partLse },
      });
      replace.set(users[0], {
        spec: { op: "attention_merge", heads, headDim, ...layout },
        rows: att.rows,
        args: {
          positions: att.args.positions,
          part_o: partO,
          part_lse: partLse,
          out: att.args.out,
        },
      });
    });
    return rewrite({ ...fn, values }, replace, new Set());
  },
};
