/**
 * The kernel contract: what every backend (WebGPU, CPU) implements and what the compiler lowers
 * the tensor IR to. One `KernelSpec` is one specialised kernel (all model constants baked in);
 * its storage bindings are listed by `bindings(spec)` in a fixed order that both backends, the
 * host code the compiler emits and the conformance suite use.
 *
 * Conventions (all backends):
 * - Activations are f32, row-major. `R` is the runtime row count of a dispatch (tokens `n` or
 *   sequences `b`); every other size is a compile-time constant in the spec.
 * - f16 data (weights, scales, biases) is stored as IEEE half, little-endian, two per u32 word
 *   (element i is the low half of word i>>1 when i is even). Buffers are padded to 4 bytes.
 * - Group-quantised weights follow MLC's layout: `q_weight` u32 [N, ceil(K/G)*G/E] with E =
 *   floor(32/bits) elements per word, packed low bits first; `q_scale` [N, ceil(K/G)];
 *   value = (q - maxInt) * scale, maxInt = 2^(bits-1) - 1. K is zero-padded to a multiple of G.
 * - Paged KV cache, one buffer per layer: [numPages, 2, kvHeads, PAGE_SIZE, headDim] (index 0
 *   of the second dim is K, 1 is V), f32, or f16 (packed as above) in the kernels whose spec
 *   says `kvDtype: "f16"` (every kernel of a library that touches the cache says the same). A token at position p of sequence s lives in page
 *   `page_indices[page_indptr[s] + floor(p / PAGE_SIZE)]`, slot `p % PAGE_SIZE`.
 * - Attention inputs: `positions` u32 [n] (position of each token in its sequence), `tok_seq`
 *   u32 [n] (sequence index of each token within the batch), `page_indptr` u32 [b+1],
 *   `page_indices` u32 [total pages].
 *
 * @module
 */

/** Tokens per KV-cache page. */
export const PAGE_SIZE = 16;

export type DenseDtype = "f32" | "f16";

/** How a weight matrix is stored. */
export type WeightFormat =
  | { kind: "dense"; dtype: DenseDtype }
  | { kind: "group"; bits: 3 | 4; groupSize: number; scaleDtype: DenseDtype };

/** Words per row and groups per row for a group-quantised [N, K] weight. */
export function groupLayout(
  f: { bits: number; groupSize: number },
  K: number,
): { elemsPerWord: number; groups: number; wordsPerRow: number; maxInt: number } {
  const elemsPerWord = Math.floor(32 / f.bits);
  const groups = Math.ceil(K / f.groupSize);
  if (f.groupSize % elemsPerWord !== 0) {
    throw new RangeError(`group size ${f.groupSize} is not a multiple of ${elemsPerWord}`);
  }
  return {
    elemsPerWord,
    groups,
    wordsPerRow: (groups * f.groupSize) / elemsPerWord,
    maxInt: 2 ** (f.bits - 1) - 1,
  };
}

/** Kernels. Comments give each binding's shape; `R` is the runtime row count. */
export type KernelSpec =
  /** out[r, :] = table[ids[r], :] for ids in [rowStart, rowStart+rows); other rows untouched.
   * Bindings: ids u32[R], weight (dense [rows, H] | q_weight, q_scale), out f32[R, H]. */
  | {
    op: "embed";
    vocab: number;
    hidden: number;
    rowStart: number;
    rows: number;
    weight: WeightFormat;
    /** The first layer's RMSNorm folded in, the writing side (as a matmul's `normOut`): the
     * rows written also get out_w[r, c] = out[r, c] * norm_w[c] and out_ssq[r, j] = sum of
     * out[r, c]^2 over c in [4j, 4j + 4) within H, the next `norm` matmul's x and x_ssq.
     * Bindings: `norm_w` [H] just before out, `out_w` f32[R, H], `out_ssq` f32[R, ceil(H / 4)]
     * after it. */
    normOut?: { weightDtype: DenseDtype };
    /** With normOut, out_w and out_ssq unit-major (`unitMajorIndex`; H a multiple of 32). */
    outUnits?: boolean;
  }
  /** out[r, rowStart + c] = sum_k x[r, k] * W[c, k] (+ bias[c]) for c in [0, rows).
   * W holds weight rows [rowStart, rowStart+rows) of an [N, K] matrix.
   * epilogue "silu_mul": W is [2I, K] (gate rows then up rows, rows = N = 2I, rowStart = 0) and
   *   out[r, c] = silu(g_c) * u_c with out f32[R, I].
   * epilogue "add": out[r, c] = residual[r, c] + (xW^T)[r, c].
   * Bindings: x f32[R, K], weight (dense | q_weight, q_scale), [bias f32/f16 [N]],
   *   [residual f32[R, N]], out f32[R, N or N/2] (with `outCodes`: u32[R, q8RowWords(N or
   *   N/2)]). */
  | {
    op: "matmul";
    N: number;
    K: number;
    rowStart: number;
    rows: number;
    weight: WeightFormat;
    bias: DenseDtype | null;
    epilogue: "none" | "silu_mul" | "add";
    /** Hint: the largest R this kernel will see (1 for decode: use a GEMV shape). */
    maxRows: number;
    /** q8 activations (4-bit group weights only): each row of x is first rounded through int8
     * codes per 32-element block of K (from k = 0; the last block may be shorter): with
     * a = max |x| over the block, x_k becomes d * c_k, d = a / 127, c_k = round(x_k / d)
     * with ties to even (all zero when a = 0). llama.cpp's q8 activations: on WebGPU the
     * products become packed int8 dot products. */
    xq8?: boolean;
    /** RMSNorm folded in, the reading side (only with `xq8`): x arrives already multiplied by
     * the norm weight, and `x_ssq` f32[R, ceil(K / 4)] holds the sums of squares of the
     * un-weighted row in chunks of 4 elements (as a `normOut` matmul writes them); the product
     * uses x[r] * inv_r, inv_r = 1 / sqrt(sum_j x_ssq[r, j] / K + eps) (with `xq8`, the codes
     * of that row). Bindings: `x_ssq` right after x. */
    norm?: { eps: number };
    /** RMSNorm folded in, the writing side (only with `xq8`, rowStart 0, rows N, no silu_mul):
     * besides out, writes out_w[r, c] = out[r, c] * norm_w[c] and out_ssq[r, j] = sum of
     * out[r, c]^2 over c in [4j, 4j + 4) within N, the next `norm` matmul's x and x_ssq.
     * Bindings: `norm_w` [N] just before out, `out_w` f32[R, N] and `out_ssq` f32[R, ceil(N / 4)]
     * after it. */
    normOut?: { weightDtype: DenseDtype };
    /** x (and, with `norm`, x_ssq) arrive unit-major (`unitMajorIndex`): only with `xq8`, K a
     * multiple of 32. */
    xUnits?: boolean;
    /** Writes unit-major (`unitMajorIndex`): with silu_mul, out (I a multiple of 32); with
     * normOut, out_w and out_ssq (N a multiple of 32; out itself stays row-major). */
    outUnits?: boolean;
    /** K split into `kSplit` (>= 2) ranges of `kSplitLen(K, kSplit)` elements (the last one
     * shorter or empty): out f32[R, kSplit * N] holds each range's partial sums,
     * out[r, s * N + c] = sum over k in range s of x[r, k] * W[c, k], which a `sum_splits`
     * adds up. Only with epilogue "none", no bias, rowStart 0, rows N, row-major x (no norm,
     * normOut or unit-major rows); with xq8, each range sums the rounded x's products. */
    kSplit?: number;
    /** With kSplit, the ranges depend on the dispatch's rows: R rows split K into S_R =
     * `kSplitsAt(spec, R)` = clamp(floor(kSplitRows / R), 1, kSplit) ranges of kSplitLen(K,
     * S_R) elements, out[r, s * N + c] their partial sums for s < S_R; the partials past S_R
     * are not written (the reader, given the same `splitRows`, adds the first S_R). */
    kSplitRows?: number;
    /** x arrives as a `quantize_q8` row (only with `xq8`, K a multiple of 64, no norm, normOut
     * or unit-major rows): binding x holds [R, q8RowWords(K)] words, the codes and block
     * scales of the rows the matmul would otherwise round itself (the same products). */
    xCodes?: boolean;
    /** out is written as `quantize_q8` rows of the output (u32[R, q8RowWords(outCols)], outCols
     * N, or N / 2 with silu_mul, a multiple of 64): the codes of the values out would hold. Only
     * with epilogue "none" or "silu_mul", rowStart 0, rows N, no kSplit, normOut or outUnits
     * (the next matmul reads them as its `xCodes`). */
    outCodes?: boolean;
  }
  /** x rounded through int8 codes per 32-element block as `xq8` defines it, written once for
   * the matmuls that read it (`xCodes`). A row of out (`q8RowWords(K)` u32 words) holds K / 4
   * code words, then K / 32 pairs (d as f32 bits, the block's code sum as f32 bits); block u's
   * words are 8u .. 8u + 7: for w < 4, word 8u + 2w holds the codes of elements 32u + 8w,
   * + 8w + 2, + 8w + 4, + 8w + 6 (bytes 0-3, two's complement) and word 8u + 2w + 1 those of
   * 32u + 8w + 1, + 3, + 5, + 7: a 4-bit weight word's even and odd nibbles. K a multiple of 64.
   * Bindings: x f32[R, K], out u32[R, q8RowWords(K)]. */
  | { op: "quantize_q8"; K: number }
  /** out[r, c] = sum over s < splits of part[r, s * width + c] (+ bias[c]) (+ residual[r, c]):
   * the partial sums of a `kSplit` matmul with the epilogue it left out.
   * Bindings: part f32[R, splits * width], [bias f32/f16 [width]], [residual f32[R, width]],
   *   out f32[R, width]. */
  | {
    op: "sum_splits";
    width: number;
    splits: number;
    bias: DenseDtype | null;
    residual: boolean;
    /** The matmul's `kSplitRows`: a dispatch of R rows adds only its first `kSplitsAt` =
     * clamp(floor(splitRows / R), 1, splits) partials (the others are not written). */
    splitRows?: number;
  }
  /** Full dequantisation (O0 only): out f32[N, K] from q_weight, q_scale; dispatched with R = N. */
  | { op: "dequantize"; N: number; K: number; weight: WeightFormat }
  /** out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w.  Bindings: x f32[R, H], w [H], out f32[R, H]
   * (with `outCodes`: u32[R, q8RowWords(H)]). */
  | {
    op: "rms_norm";
    hidden: number;
    eps: number;
    weightDtype: DenseDtype;
    /** out is written as `quantize_q8` rows of the normed values (H a multiple of 64). */
    outCodes?: boolean;
  }
  /** sum = a + b; out = rms_norm(sum) * w.  Bindings: a f32[R, H], b f32[R, H] (with `splits`:
   * [R, splits * H]), w [H], sum f32[R, H], out f32[R, H] (with `outCodes`: u32[R,
   * q8RowWords(H)]). */
  | {
    op: "add_rms_norm";
    hidden: number;
    eps: number;
    weightDtype: DenseDtype;
    /** out is written as `quantize_q8` rows of the normed values (H a multiple of 64). */
    outCodes?: boolean;
    /** b holds a `kSplit` matmul's `splits` (>= 2) partial sums, added up in split order
     * (b[r, c] = b[r, c] + b[r, H + c] + ...) before the add: a `sum_splits` folded in. */
    splits?: number;
    /** With splits, the matmul's `kSplitRows`: only the dispatch's first clamp(floor(splitRows
     * / R), 1, splits) partials are added (as `sum_splits` with `splitRows`). */
    splitRows?: number;
  }
  /** out = a + b.  Bindings: a, b f32[R, width], out f32[R, width]. */
  | { op: "add"; width: number }
  /** out[r, i] = silu(x[r, i]) * x[r, I + i].  Bindings: x f32[R, 2I], out f32[R, I]. */
  | { op: "silu_mul"; inter: number }
  /** x is qkv f32[R, (H + 2KV) * D]; out = same with q and k heads rotated (HF rotate_half
   * convention: pairs (i, i + D/2)) at angle positions[r] * invFreq[i]; v copied.
   * Bindings: x, positions u32[R], out. */
  | { op: "rope"; heads: number; kvHeads: number; headDim: number; invFreq: number[] }
  /** Writes the k and v heads of qkv f32[R, (H + 2KV) * D] into the layer's cache.
   * Bindings: qkv, positions, tok_seq, page_indptr, page_indices, cache (read_write). */
  | { op: "kv_append"; heads: number; kvHeads: number; headDim: number; kvDtype?: DenseDtype }
  /** rope + kv_append in one: q_out f32[R, H*D] gets the rotated q heads; rotated k and v go to the cache.
   * Bindings: qkv, positions, tok_seq, page_indptr, page_indices, cache (read_write), q_out. */
  | {
    op: "rope_kv_append";
    heads: number;
    kvHeads: number;
    headDim: number;
    invFreq: number[];
    kvDtype?: DenseDtype;
  }
  /** Causal paged attention with GQA. Query row r (head h) attends to positions j of its
   * sequence with lo <= j <= positions[r], lo = window > 0 ? max(0, p - window + 1) : 0,
   * softmax(q·k * scale). q is read at q[r * qStride + h * D + d] (qStride lets the O0 path read
   * q straight from the roped qkv). Bindings: q, positions, tok_seq, page_indptr, page_indices,
   * cache (read), out f32[R, H*D]. */
  | {
    op: "attention";
    heads: number;
    kvHeads: number;
    headDim: number;
    /** The cache's element type (absent: f32). */
    kvDtype?: DenseDtype;
    qStride: number;
    window: number;
    scale: number;
    /** Hint: the largest R this kernel will see (absent: any). Many rows (prefill) take a
     * tiled kernel that reads each key once for a tile of rows. */
    maxRows?: number;
  }
  /** Decode attention split over the KV positions (flash-decoding), step 1 of 2; `rope_kv_append`
   * and `attention` in one for calls in which every row is the only token of its sequence.
   * A dispatch of R rows gives each row S_R = clamp(floor(splitRows / R), 1, splits) splits (the
   * fewer the rows, the more splits a row: about as many splits in all whatever the batch).
   * Row r (p = positions[r], lo as for `attention`) attends to lo..p in its `used` splits of
   * `len` positions: n = p + 1 - lo, len = roundUp(ceil(n / S_R), splitAlign),
   * used = ceil(n / len); split s covers [lo + s*len, min(lo + (s+1)*len, p + 1)).
   * The q heads and the new k head are rotated as `rope_kv_append` does (k and v of qkv row r are
   * the token at p); k and v are written to the cache at p, and position p's key and value are
   * those, as the cache stores them (rounded to f16 with an f16 cache). Per split s < used and
   * head h, over the split's positions j with scores
   * t_j = scale * rope(q_h) . k_j: part_lse[r, s, h] = log(sum_j exp(t_j)) and
   * part_o[r, s, h, :] = sum_j softmax(t)_j v_j; splits s >= used are not written.
   * Bindings: qkv f32[R, (H + 2KV) * D] (with `qkvSplits`: [R, qkvSplits * (H + 2KV) * D]),
   * [qkv_bias f32/f16 [(H + 2KV) * D] with `qkvBias`], positions, tok_seq, page_indptr,
   * page_indices, cache (read_write), part_o f32[R, splits * H * D], part_lse f32[R, splits *
   * H]. */
  | {
    op: "attention_decode";
    heads: number;
    kvHeads: number;
    headDim: number;
    /** The cache's element type (absent: f32). */
    kvDtype?: DenseDtype;
    window: number;
    scale: number;
    invFreq: number[];
    splits: number;
    splitRows: number;
    splitAlign: number;
    /** qkv holds a `kSplit` matmul's `qkvSplits` (>= 2) partial sums, added up in split order
     * as they are read: a `sum_splits` folded in. */
    qkvSplits?: number;
    /** With qkvSplits, the matmul's `kSplitRows`: only the dispatch's first clamp(floor(
     * qkvSplitRows / R), 1, qkvSplits) partials are added (as `sum_splits` with `splitRows`). */
    qkvSplitRows?: number;
    /** qkv's bias, of this dtype, added to every qkv row (after its partial sums): a
     * `sum_splits` with a bias folded in. */
    qkvBias?: DenseDtype;
    /** `attention_merge` folded in (pass `fold_attention_merge`): the same dispatch also
     * writes out f32[R, H*D] as the merge with these fields would (`attentionMergeOf`). The
     * partials are then scratch in the layout `mergedPartials` gives, and counts u32[R * KV]
     * (zero before the dispatch) is zero after it. Bindings: those above, then counts, out. */
    merge?: { outUnits?: boolean; outCodes?: boolean };
  }
  /** Step 2 of 2: combines the splits of `attention_decode` (same heads, headDim, window, splits,
   * splitRows, splitAlign, and R): with M = max_s part_lse[r, s, h] over the row's used splits,
   * out[r, h*D + d] = sum_s exp(lse_s - M) part_o[r, s, h, d] / sum_s exp(lse_s - M).
   * Bindings: positions u32[R], part_o, part_lse, out f32[R, H*D] (with `outCodes`: u32[R,
   * q8RowWords(H * D)]). */
  | {
    op: "attention_merge";
    heads: number;
    headDim: number;
    window: number;
    splits: number;
    splitRows: number;
    splitAlign: number;
    /** out is written unit-major (`unitMajorIndex`; H * D a multiple of 32). */
    outUnits?: boolean;
    /** out is written as `quantize_q8` rows (D a multiple of 32, H * D of 64; not with
     * outUnits). */
    outCodes?: boolean;
  }
  /** out[r, :] = x[idx[r], :].  Bindings: x f32[*, width], idx u32[R], out f32[R, width]. */
  | { op: "take_rows"; width: number }
  /** Logit processing for sampling, row r over its sparse entries e in [indptr[r], indptr[r+1])
   * (4 words each: token u32, count f32 (times generated), in_prompt u32 (0/1), bias f32; each
   * token at most once per row) and params[r] = (presence, frequency, repetition, top_k):
   * l = x[r, t] + bias; if count > 0 or in_prompt: l = l > 0 ? l / repetition : l * repetition;
   * l -= presence * (count > 0) + frequency * count. Then, when 1 <= top_k < V, every logit below
   * the top_k-th largest becomes -inf (ties with it are kept).
   * Bindings: x f32[R, V], indptr u32[R+1], entries u32[E*4], params f32[R, 4], out f32[R, V]. */
  | { op: "logits_process"; vocab: number }
  /** out[r] = argmax_c x[r, c] (lowest index wins ties; 0 where no element is above -inf).
   * Bindings: x f32[R, V], out u32[R]. With `blocks` (>= 2) a kernel may spread a row over
   * that many workgroups, which store their blocks' max and first index in `part` (scratch,
   * u32[R, argmaxPartWords(blocks)]: a row's pairs start a 128-byte line) and count themselves
   * in `counts` (u32[R], zero before and after: a `state` value) so that the last of a row
   * combines them. Bindings then: x, part, counts, out. */
  | { op: "argmax"; vocab: number; blocks?: number }
  /** out[r, :] = softmax(x[r, :] / t[r]); t[r] <= 0 means greedy: one-hot at the argmax.
   * Bindings: x f32[R, V], temperature f32[R], out f32[R, V]. With `blocks` (>= 2), the row's
   * max, argmax and sum come from `softmax_stats` of the same vocab and blocks, combined:
   * M = max_b m[r, b], the argmax the lowest idx[r, b] of the blocks at M, and
   * S = sum_b s[r, b] * exp((m[r, b] - M) / t) over the blocks with m > -inf (t <= 0: 1);
   * out = exp((x - M) / t) / S (or the one-hot). Bindings: x, temperature, stats f32[R,
   * blocks * 2], stats_idx u32[R, blocks], out. */
  | { op: "softmax_temp"; vocab: number; blocks?: number }
  /** Block b of row r is x[r, b * L .. min(V, (b + 1) * L)), L = ceil(V / blocks): its max
   * m, the lowest index (in the row) of m and s = sum exp((x - m) / t) over it (t = 1 where
   * t[r] <= 0; exp(-inf) = 0): stats[r, b] = (m, s), idx[r, b] = the index (0xffffffff, m =
   * -inf and s = 0 where every element is -inf; an empty block too). Bindings: x f32[R, V],
   * temperature f32[R], stats f32[R, blocks * 2], idx u32[R, blocks]. */
  | { op: "softmax_stats"; vocab: number; blocks: number }
  /** The histogram `sample_top_p` starts from. Row r is cut into slices of `TOP_P_SLICE`
   * positions; for slice g and bucket b (`topPBucket` of the bits of each p > 0 in it),
   * out[r, g, b, :] = (mass_lo, mass_hi): the sum of floor(min(p, 1 - 2^-24) * 2^32) over
   * them as a 64-bit integer (lo + 2^32 hi). Rows with
   * top_p[r] >= 1 (nothing cut, no search) are not written.
   * Bindings: probs f32[R, V], top_p f32[R], out u32[R, topPHistWords(V)]. */
  | { op: "top_p_hist"; vocab: number }
  /** Top-p (nucleus) sampling from probabilities: keep the smallest set of highest-probability
   * tokens whose mass >= top_p[r] (ties broken by lower index), renormalise, and return the
   * token at which the mass of the kept tokens, summed in index order, first exceeds
   * u[r] * kept_mass (if none does, the last kept index of nonzero probability, or 0). Any order of
   * the walk samples the same distribution; index order needs no sort. When top_p[r] >= 1
   * nothing is cut: the kept set is every token. `gathered` and `mass` are `top_p_gather`'s
   * outputs for the same rows: a kernel may take the nucleus's edge from the candidates
   * gathered there and draw from the slices' masses, checking that the bucket they were
   * gathered for holds the edge, so that the token does not depend on which bucket that was
   * beyond f32 rounding.
   * Bindings: probs f32[R, V], top_p f32[R], u f32[R], gathered u32[R, topPGatherWords(V)],
   * mass f32[R, topPSlices(V)], out u32[R]. */
  | { op: "sample_top_p"; vocab: number }
  /** The candidates for the edge of row r's nucleus, for `sample_top_p`, in slices of
   * `TOP_P_SLICE` positions. With top_p[r] < 1: B, the largest bucket b for which the
   * histogram's masses (`hist`, `top_p_hist`'s for the same rows; each bucket's summed over the
   * slices as an integer) of the buckets >= b add up to at least
   * max(topPFixed(max(top_p[r], 0)), 1) (`TOP_P_NONE` where none do). out[r, 0] = B; for slice
   * g: out[r, 1 + g] = n_g, how many elements of slice g have p > 0 in bucket B, and
   * out[r, 1 + G + g * TOP_P_SLICE + k] (k < n_g) their indices in the row, ascending;
   * mass[r, g] = the sum of p over the elements of slice g with p > 0 in a bucket above B
   * (B = `TOP_P_NONE`: n_g = 0, mass 0). With top_p[r] >= 1 (every token kept): out[r, 0] =
   * `TOP_P_ALL`, n_g = 0, mass[r, g] = the sum of p over slice g. Other words are not written.
   * Bindings: probs f32[R, V], top_p f32[R], hist u32[R, topPHistWords(V)],
   * out u32[R, topPGatherWords(V)], mass f32[R, topPSlices(V)]. */
  | { op: "top_p_gather"; vocab: number };

export type KernelOp = KernelSpec["op"];

export interface Binding {
  name: string;
  access: "read" | "read_write";
  /** Written, but its contents after the dispatch are not part of the contract (the
   * conformance suite does not compare them). */
  scratch?: true;
}

function weightBindings(w: WeightFormat): Binding[] {
  return w.kind === "dense"
    ? [{ name: "weight", access: "read" }]
    : [{ name: "q_weight", access: "read" }, { name: "q_scale", access: "read" }];
}

const r = (name: string): Binding => ({ name, access: "read" });
const w = (name: string): Binding => ({ name, access: "read_write" });
const PAGED = [r("positions"), r("tok_seq"), r("page_indptr"), r("page_indices")];

/** Storage bindings of a kernel, in binding order (binding 0 is the uniform `R`). */
export function bindings(spec: KernelSpec): Binding[] {
  switch (spec.op) {
    case "embed":
      return [
        r("ids"),
        ...weightBindings(spec.weight),
        ...(spec.normOut ? [r("norm_w"), w("out"), w("out_w"), w("out_ssq")] : [w("out")]),
      ];
    case "matmul":
      return [
        r("x"),
        ...(spec.norm ? [r("x_ssq")] : []),
        ...weightBindings(spec.weight),
        ...(spec.bias ? [r("bias")] : []),
        ...(spec.epilogue === "add" ? [r("residual")] : []),
        ...(spec.normOut ? [r("norm_w"), w("out"), w("out_w"), w("out_ssq")] : [w("out")]),
      ];
    case "dequantize":
      return [...weightBindings(spec.weight), w("out")];
    case "rms_norm":
      return [r("x"), r("w"), w("out")];
    case "add_rms_norm":
      return [r("a"), r("b"), r("w"), w("sum"), w("out")];
    case "quantize_q8":
      return [r("x"), w("out")];
    case "sum_splits":
      return [
        r("part"),
        ...(spec.bias ? [r("bias")] : []),
        ...(spec.residual ? [r("residual")] : []),
        w("out"),
      ];
    case "add":
      return [r("a"), r("b"), w("out")];
    case "silu_mul":
      return [r("x"), w("out")];
    case "rope":
      return [r("x"), r("positions"), w("out")];
    case "kv_append":
      return [r("qkv"), ...PAGED, w("cache")];
    case "rope_kv_append":
      return [r("qkv"), ...PAGED, w("cache"), w("q_out")];
    case "attention":
      return [r("q"), ...PAGED, r("cache"), w("out")];
    case "attention_decode": {
      const head = [r("qkv"), ...(spec.qkvBias ? [r("qkv_bias")] : []), ...PAGED, w("cache")];
      return spec.merge
        ? [
          ...head,
          { ...w("part_o"), scratch: true },
          { ...w("part_lse"), scratch: true },
          w("counts"),
          w("out"),
        ]
        : [...head, w("part_o"), w("part_lse")];
    }
    case "attention_merge":
      return [r("positions"), r("part_o"), r("part_lse"), w("out")];
    case "take_rows":
      return [r("x"), r("idx"), w("out")];
    case "argmax":
      return spec.blocks
        ? [r("x"), { ...w("part"), scratch: true }, w("counts"), w("out")]
        : [r("x"), w("out")];
    case "softmax_temp":
      return spec.blocks
        ? [r("x"), r("temperature"), r("stats"), r("stats_idx"), w("out")]
        : [r("x"), r("temperature"), w("out")];
    case "softmax_stats":
      return [r("x"), r("temperature"), w("stats"), w("idx")];
    case "logits_process":
      return [r("x"), r("indptr"), r("entries"), r("params"), w("out")];
    case "top_p_hist":
      return [r("probs"), r("top_p"), w("out")];
    case "sample_top_p":
      return [r("probs"), r("top_p"), r("u"), r("gathered"), r("mass"), w("out")];
    case "top_p_gather":
      return [r("probs"), r("top_p"), r("hist"), w("out"), w("mass")];
  }
}

/** Positions a slice of `top_p_hist` covers (one WebGPU workgroup). */
export const TOP_P_SLICE = 8192;
/** Buckets of `top_p_hist`: `topPBucket`. */
export const TOP_P_BUCKETS = 512;
/** Bits >> 20 (biased exponent, 3 mantissa bits) of the largest p of bucket 0. */
export const TOP_P_KEY0 = 1024 - (TOP_P_BUCKETS - 1);

/** Bucket of a positive f32 `p` given its bits: bits >> 20 (the exponent and 3 mantissa bits,
 * eight buckets an octave) less `TOP_P_KEY0`, clamped to [0, TOP_P_BUCKETS - 1]; so bucket 0
 * holds p < 1.25 * 2^-63, bucket 511 p >= 2, and a larger p never has a smaller bucket. */
export function topPBucket(bits: number): number {
  return Math.min(Math.max((bits >>> 20) - TOP_P_KEY0, 0), TOP_P_BUCKETS - 1);
}

/** Slices of `TOP_P_SLICE` positions of a row of `V`. */
export function topPSlices(V: number): number {
  return Math.ceil(V / TOP_P_SLICE);
}

/** u32 words of a row of `top_p_hist`'s output over a vocabulary of `V`. */
export function topPHistWords(V: number): number {
  return topPSlices(V) * TOP_P_BUCKETS * 2;
}

/** u32 words of a row of `top_p_gather`'s `out` over a vocabulary of `V`: the bucket, the
 * slices' counts, a slice's room for its candidates each. */
export function topPGatherWords(V: number): number {
  return 1 + topPSlices(V) + V;
}

/** `top_p_gather`'s bucket word where no bucket reaches top_p. */
export const TOP_P_NONE = 0xffffffff;
/** `top_p_gather`'s bucket word of a row with top_p >= 1 (every token kept). */
export const TOP_P_ALL = 0xfffffffe;

/** The bucket `top_p_gather` gathers for a row: the largest b where the masses of buckets >= b
 * (`bucketMass(b)`, integers) reach the row's threshold (see the op), or `TOP_P_NONE`. */
export function topPGatherBucket(bucketMass: (b: number) => number, topP: number): number {
  const need = Math.max(topPFixed(Math.max(topP, 0)), 1);
  let acc = 0;
  for (let b = TOP_P_BUCKETS - 1; b >= 0; b--) {
    acc += bucketMass(b);
    if (acc >= need) return b;
  }
  return TOP_P_NONE;
}

/** The fixed-point mass `top_p_hist` adds for p (0 < p): floor(min(p, 1 - 2^-24) * 2^32). */
export function topPFixed(p: number): number {
  return Math.floor(Math.min(p, 1 - 2 ** -24) * 2 ** 32);
}

/** The WGSL language feature (listed in `TargetInfo.features`) that q8 activations need. */
export const PACKED_DOT = "packed_4x8_integer_dot_product";

/** Whether `target` runs the q8-activation kernels (WebGPU with `PACKED_DOT`). */
export function hasPackedDot(target: TargetInfo): boolean {
  return target.backend === "webgpu" && target.features.includes(PACKED_DOT);
}

/** Whether a matmul of `weight` can take q8 activations (`xq8`): 4-bit groups of 32k elements. */
export function q8Eligible(weight: WeightFormat): boolean {
  return weight.kind === "group" && weight.bits === 4 && weight.groupSize % 32 === 0;
}

/**
 * The unit-major row layout (a matmul's `xUnits` and `outUnits`, attention_merge's `outUnits`):
 * a row of W elements (W a multiple of 32) is stored as 8 slices of W / 32 vec4s, element
 * k = 32u + 4j + l (unit u, its vec4 j, lane l) at (j * W / 32 + u) * 4 + l. Threads that each
 * take a 32-element unit (the q8 GEMV's) then read consecutive memory. A row of sums of 4
 * (`x_ssq`, W / 4 of them) goes the same way: sum q = 8u + j at j * W / 32 + u
 * (`unitMajorChunk`).
 */
export function unitMajorIndex(k: number, W: number): number {
  return unitMajorChunk(k >> 2, W) * 4 + (k & 3);
}

/** Words of a `quantize_q8` row of K elements: K / 4 code words and K / 16 for the blocks'
 * (d, code sum) pairs. */
export function q8RowWords(K: number): number {
  return K / 4 + K / 16;
}

/** Whether a kernel's cache binding holds f16 (`kvDtype`). */
export function kvF16(spec: KernelSpec): boolean {
  return "kvDtype" in spec && spec.kvDtype === "f16";
}

/** The row width (K) of a kernel's `out` when it is written as `quantize_q8` rows (quantize_q8
 * itself, a writer with `outCodes`), else null. */
export function q8OutWidth(spec: KernelSpec): number | null {
  if (spec.op === "attention_decode") return spec.merge ? q8OutWidth(attentionMergeOf(spec)) : null;
  if (spec.op === "quantize_q8") return spec.K;
  if ((spec.op === "rms_norm" || spec.op === "add_rms_norm") && spec.outCodes) return spec.hidden;
  if (spec.op === "attention_merge" && spec.outCodes) return spec.heads * spec.headDim;
  if (spec.op === "matmul" && spec.outCodes) {
    return spec.epilogue === "silu_mul" ? spec.N / 2 : spec.N;
  }
  return null;
}

/** Why a `quantize_q8`, a matmul's `xCodes` or a writer's `outCodes` (rms_norm, add_rms_norm,
 * attention_merge, matmul) cannot hold, or null where it can: both backends refuse such a spec
 * with this. */
export function q8CodesError(spec: KernelSpec): string | null {
  if (spec.op === "attention_decode" && spec.merge) return q8CodesError(attentionMergeOf(spec));
  if (spec.op === "quantize_q8") {
    return spec.K > 0 && spec.K % 64 === 0
      ? null
      : `quantize_q8 needs K a positive multiple of 64 (K ${spec.K})`;
  }
  if ((spec.op === "rms_norm" || spec.op === "add_rms_norm") && spec.outCodes) {
    return spec.hidden > 0 && spec.hidden % 64 === 0
      ? null
      : `${spec.op} outCodes needs hidden a positive multiple of 64 (hidden ${spec.hidden})`;
  }
  if (spec.op === "attention_merge" && spec.outCodes) {
    const { heads: H, headDim: D } = spec;
    return D % 32 === 0 && (H * D) % 64 === 0 && !spec.outUnits
      ? null
      : `attention_merge outCodes needs headDim a multiple of 32, heads x headDim of 64 and no outUnits (${H} x ${D})`;
  }
  if (spec.op !== "matmul") return null;
  if (spec.outCodes) {
    const W = q8OutWidth(spec)!;
    if (
      spec.epilogue === "add" || spec.rowStart !== 0 || spec.rows !== spec.N || spec.kSplit ||
      spec.normOut || spec.outUnits || !(W > 0 && W % 64 === 0)
    ) {
      return `matmul outCodes needs epilogue none or silu_mul, the whole output (rowStart 0, rows N), no kSplit, normOut or outUnits, and out columns a positive multiple of 64 (epilogue ${spec.epilogue}, N ${spec.N}, rows [${spec.rowStart}, ${
        spec.rowStart + spec.rows
      }))`;
    }
  }
  if (!spec.xCodes) return null;
  if (!spec.xq8 || spec.K % 64 !== 0 || spec.norm || spec.normOut || spec.xUnits) {
    return `matmul xCodes needs xq8, K a multiple of 64 (K ${spec.K}) and row-major x (no norm, normOut or unit-major rows)`;
  }
  return null;
}

/** Why a folded `sum_splits` (add_rms_norm's `splits`, attention_decode's `qkvSplits`) cannot
 * hold, or null where it can (or there is none): both backends refuse such a spec with this. */
export function foldedSplitsError(spec: KernelSpec): string | null {
  const [n, rows] = spec.op === "add_rms_norm"
    ? [spec.splits, spec.splitRows]
    : spec.op === "attention_decode"
    ? [spec.qkvSplits, spec.qkvSplitRows]
    : [undefined, undefined];
  const [nName, rowsName] = spec.op === "add_rms_norm"
    ? ["splits", "splitRows"]
    : ["qkvSplits", "qkvSplitRows"];
  if (n !== undefined && !(Number.isInteger(n) && n >= 2)) {
    return `${spec.op}: ${nName} ${n} must be an integer >= 2`;
  }
  return rows === undefined ? null : splitRowsError(spec.op, rowsName, rows, n);
}

/** Why a reader's `splitRows` (sum_splits' `splitRows`, add_rms_norm's, attention_decode's
 * `qkvSplitRows`) cannot hold given its `splits`, or null. */
export function splitRowsError(
  op: string,
  name: string,
  rows: number,
  splits: number | undefined,
): string | null {
  if (splits === undefined) return `${op}: ${name} needs the splits it counts`;
  return Number.isInteger(rows) && rows >= 1
    ? null
    : `${op}: ${name} ${rows} must be a positive integer`;
}

/** Why a `sum_splits` spec cannot hold (its splits, its splitRows), or null: both backends
 * refuse such a spec with this. */
export function sumSplitsError(spec: Extract<KernelSpec, { op: "sum_splits" }>): string | null {
  if (!(Number.isInteger(spec.splits) && spec.splits >= 1)) {
    return `sum_splits: splits ${spec.splits} must be a positive integer`;
  }
  return spec.splitRows === undefined
    ? null
    : splitRowsError(spec.op, "splitRows", spec.splitRows, spec.splits);
}

/** The partials a reader of a `kSplit` matmul's partial sums adds in a dispatch of R rows:
 * the matmul's `kSplitsAt` where it has `splitRows` (its kSplitRows), else all `splits`. */
export function splitsRead(splits: number, splitRows: number | undefined, R: number): number {
  return splitRows === undefined ? splits : splitsPerRow({ splits, splitRows }, R);
}

/** Elements of each K range of a `kSplit` matmul: K / kSplit rounded up to a multiple of 32. */
export function kSplitLen(K: number, kSplit: number): number {
  return Math.ceil(K / kSplit / 32) * 32;
}

/** The K ranges of a `kSplit` matmul in a dispatch of `R` rows (`kSplitRows`: fewer the more
 * rows; else `kSplit`). */
export function kSplitsAt(spec: { kSplit?: number; kSplitRows?: number }, R: number): number {
  return splitsRead(spec.kSplit ?? 1, spec.kSplitRows, R);
}

/** Why a matmul's `kSplit` cannot hold, or null where it can (or it has none): both backends
 * refuse such a spec with this. */
export function kSplitError(spec: KernelSpec): string | null {
  if (spec.op !== "matmul") return null;
  if (spec.kSplit === undefined) {
    return spec.kSplitRows === undefined ? null : "matmul kSplitRows needs kSplit";
  }
  const S = spec.kSplit;
  if (!(Number.isInteger(S) && S >= 2)) return `matmul kSplit ${S} must be an integer >= 2`;
  const SR = spec.kSplitRows;
  if (SR !== undefined && !(Number.isInteger(SR) && SR >= 1)) {
    return `matmul kSplitRows ${SR} must be a positive integer`;
  }
  if (
    spec.epilogue !== "none" || spec.bias || spec.rowStart !== 0 || spec.rows !== spec.N ||
    spec.norm || spec.normOut || spec.xUnits || spec.outUnits
  ) {
    return "matmul kSplit needs epilogue none, no bias, rowStart 0, rows N and row-major x (no norm, normOut or unit-major rows)";
  }
  return null;
}

/** Why a matmul's or attention_merge's unit-major fields (`xUnits`, `outUnits`) cannot hold
 * for its shapes, or null where they can: both backends refuse such a spec with this. */
export function unitLayoutError(spec: KernelSpec): string | null {
  if (spec.op === "attention_decode" && spec.merge) return unitLayoutError(attentionMergeOf(spec));
  if (spec.op === "attention_merge") {
    return spec.outUnits && (spec.heads * spec.headDim) % 32 !== 0
      ? `attention_merge outUnits needs heads x headDim a multiple of 32 (${spec.heads} x ${spec.headDim})`
      : null;
  }
  if (spec.op === "embed") {
    return spec.outUnits && !(spec.normOut && spec.hidden % 32 === 0)
      ? `embed outUnits needs normOut and hidden a multiple of 32 (hidden ${spec.hidden})`
      : null;
  }
  if (spec.op !== "matmul") return null;
  const { N, K } = spec;
  if (spec.xUnits && !(spec.xq8 && K % 32 === 0)) {
    return `matmul xUnits needs xq8 and K a multiple of 32 (K ${K})`;
  }
  const silu = spec.epilogue === "silu_mul";
  if (spec.outUnits && !(silu ? (N / 2) % 32 === 0 : spec.normOut && N % 32 === 0)) {
    return `matmul outUnits needs silu_mul with I a multiple of 32 or normOut with N a multiple of 32 (N ${N}, epilogue ${spec.epilogue})`;
  }
  return null;
}

/** Where chunk q (elements 4q..4q+3) of a unit-major row of W elements lies, in chunks. */
export function unitMajorChunk(q: number, W: number): number {
  if (W % 32 !== 0) throw new RangeError(`unit-major rows need a multiple of 32, got ${W}`);
  return (q % 8) * (W / 32) + Math.floor(q / 8);
}

/** The splits a row of a dispatch of `R` rows has: `splitRows` rows' worth shared by the
 * rows, at least 1 and at most `splits` a row. */
export function splitsPerRow(spec: { splits: number; splitRows: number }, R: number): number {
  return Math.min(spec.splits, Math.max(1, Math.floor(spec.splitRows / R)));
}

/** The splits of `attention_decode` for a row at position p in a dispatch of R rows: positions
 * lo..p, `len` a split, `used` splits (see the op's contract). */
export function decodeSplits(
  spec: { window: number; splits: number; splitRows: number; splitAlign: number },
  p: number,
  R: number,
): { lo: number; len: number; used: number } {
  const lo = spec.window > 0 ? Math.max(0, p - spec.window + 1) : 0;
  const n = p + 1 - lo;
  const perRow = splitsPerRow(spec, R);
  const len = Math.ceil(Math.ceil(n / perRow) / spec.splitAlign) * spec.splitAlign;
  return { lo, len, used: Math.ceil(n / len) };
}

/** The `attention_merge` an `attention_decode` with `merge` folds in. */
export function attentionMergeOf(
  spec: Extract<KernelSpec, { op: "attention_decode" }>,
): Extract<KernelSpec, { op: "attention_merge" }> {
  const { heads, headDim, window, splits, splitRows, splitAlign } = spec;
  return {
    op: "attention_merge",
    heads,
    headDim,
    window,
    splits,
    splitRows,
    splitAlign,
    ...spec.merge,
  };
}

/** Words of a row of `argmax`'s `part` at `blocks` blocks: its (max, index) pairs, padded to
 * whole 128-byte lines. The row's combining workgroup is then the first on its SM to load the
 * row's lines: `storageBarrier()` does not refresh a line an SM's L1 already holds
 * (`bench/gpu/grid_barrier.ts`), and another row's combiner on the same SM may have loaded a
 * shared line before this row's blocks had stored into it. */
export function argmaxPartWords(blocks: number): number {
  return Math.ceil((blocks * 2) / 32) * 32;
}

/**
 * Where an `attention_decode` with `merge` keeps the partials of split s of head h (KV head
 * kvh = h / G, j = h % G, G = heads / kvHeads) of row r: part_o at vec4s
 * ((r * KV + kvh) * splits + s) * G + j (times D / 4), part_lse at (r * KV + kvh) * lseStride +
 * s * G + j. Each KV head's partials start a new 128-byte line (lseStride rounds splits * G up
 * to 32; the part_o rows need G * D a multiple of 32), so that no cache line holds two KV
 * heads' (the workgroup that merges one KV head may run beside another's writers).
 */
export function mergedPartials(spec: { heads: number; kvHeads: number; splits: number }) {
  const lseStride = Math.ceil((spec.splits * spec.heads) / spec.kvHeads / 32) * 32;
  return { lseStride, lseWords: spec.kvHeads * lseStride };
}

/** Limits and features of a target that kernels are specialised by. */
export interface TargetLimits {
  maxComputeWorkgroupSizeX: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBufferBindingSize: number;
  maxStorageBuffersPerShaderStage: number;
  minStorageBufferOffsetAlignment: number;
}

export interface TargetInfo {
  backend: "webgpu" | "cpu";
  features: string[]; // e.g. "shader-f16", "timestamp-query"
  limits: TargetLimits;
  /** Compute units (SMs), where known from the adapter's name: tile shapes use it. */
  computeUnits?: number;
}

/** The largest power of two <= n (n >= 1). */
export function pow2Floor(n: number): number {
  return 2 ** Math.floor(Math.log2(Math.max(1, n)));
}

/** A generated WebGPU kernel. The dispatch of `R` rows launches
 * `ceil(R / rowsPerGroup) * groupsPerRowBlock` workgroups, laid out by `grid2d`; the shader
 * recovers the linear workgroup id as `wid.x + wid.y * nwg.x` and must ignore ids past the
 * total. With `splitGrid` (groupsPerRowBlock a multiple of `splits`) a block of rows launches
 * only its `splitsPerRow(splitGrid, R)` splits' share of groupsPerRowBlock (the bound, at
 * `splits` a block). Binding 0 is `var<uniform> R: vec4<u32>` (R.x = rows); storage
 * bindings follow from 1 in `bindings(spec)` order. */
export interface WgslKernel {
  code: string;
  entryPoint: string;
  rowsPerGroup: number;
  groupsPerRowBlock: number;
  splitGrid?: { splits: number; splitRows: number };
}

/** Workgroup count for a dispatch, split over x/y so that no dimension exceeds `maxPerDim`. */
export function workgroupCount(
  k: Pick<WgslKernel, "rowsPerGroup" | "groupsPerRowBlock" | "splitGrid">,
  rows: number,
  maxPerDim = 65535,
): [number, number, number] {
  const g = k.splitGrid;
  const perBlock = g
    ? splitsPerRow(g, rows) * (k.groupsPerRowBlock / g.splits)
    : k.groupsPerRowBlock;
  const total = Math.ceil(rows / k.rowsPerGroup) * perBlock;
  if (total <= maxPerDim) return [Math.max(total, 1), 1, 1];
  const x = maxPerDim;
  return [x, Math.ceil(total / x), 1];
}

/** A CPU kernel: `run(buffers, R)` with buffers in `bindings(spec)` order. */
export type CpuKernel = (buffers: ArrayBuffer[], rows: number) => void;
