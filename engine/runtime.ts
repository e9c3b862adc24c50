/**
 * The model runtime: a compiled library made live on a device. Uploads the params the plan
 * binds (split weights by row range), compiles its kernels once, owns the scratch buffers
 * (slot i is shared by every function: functions run one after another) and the per-layer
 * paged KV cache, and runs a function by queueing its steps.
 * @module
 */
import type { CpuKernel, KernelSpec } from "../compiler/codegen/contract.ts";
import { PAGE_SIZE } from "../compiler/codegen/contract.ts";
import type { BindRef, FunctionPlan } from "../compiler/codegen/plan.ts";
import { evalDim, type SymVar } from "../compiler/ir/graph.ts";
import { WeightError } from "../compiler/errors.ts";
import { kvLayerTokenBytes } from "../compiler/metadata.ts";
import type { Device, DeviceBuffer, DeviceKernel } from "./device.ts";
import type { Library } from "./library.ts";
import type { WeightSource } from "./weights.ts";

export interface RuntimeOptions {
  /** KV-cache pages (each holds PAGE_SIZE tokens of every layer). */
  numPages: number;
}

type Vars = Record<SymVar, number>;

export class ModelRuntime {
  readonly #params = new Map<string, DeviceBuffer>();
  /** Buffer slots by group: the forward functions share one set, every other function has its own. */
  readonly #slots = new Map<string, DeviceBuffer[]>();
  readonly kv: DeviceBuffer[] = [];
  /** Zero-filled buffers kept between calls, by name (plan values of kind "state"). */
  readonly #states = new Map<string, DeviceBuffer>();
  /** Per function, each step's buffers in binding order (slots, params, KV). */
  readonly #stepBuffers = new Map<string, DeviceBuffer[][]>();
  /** Per function, the last call's bound inputs (slot to buffer) and the step lists they made. */
  readonly #bound = new Map<string, { over: Map<number, DeviceBuffer>; lists: DeviceBuffer[][] }>();
  #kernels: DeviceKernel[] = [];

  private constructor(readonly lib: Library, readonly device: Device, readonly numPages: number) {}

  static async create(lib: Library, device: Device, weights: WeightSource, opts: RuntimeOptions): Promise<ModelRuntime> {
    const rt = new ModelRuntime(lib, device, opts.numPages);
    const { plan, metadata } = lib;
    // Kernels: WGSL from the plan, or the bundled CPU kernel library.
    rt.#kernels = await device.kernels(plan.kernels.map((k) => ({
      spec: k.spec as KernelSpec,
      source: device.backend === "webgpu" ? k.wgsl! : lib.cpuKernel!(k.spec as KernelSpec) as CpuKernel,
    })));
    if (device.backend === "webgpu" && plan.kernels.some((k) => !k.wgsl)) {
      throw new TypeError("this library was compiled for the CPU target; it cannot run on WebGPU");
    }
    // Params: every (param, row range) a step binds.
    const shapes = new Map(metadata.params.map((p) => [p.name, p]));
    const wanted = new Map<string, { name: string; rowStart?: number; rows?: number }>();
    for (const fn of Object.values(plan.functions)) {
      for (const step of fn.steps) {
        for (const b of step.b) if ("param" in b) wanted.set(paramKey(b), { name: b.param, rowStart: b.rowStart, rows: b.rows });
      }
    }
    const byName = new Map<string, { name: string; rowStart?: number; rows?: number }[]>();
    for (const w of wanted.values()) byName.set(w.name, [...(byName.get(w.name) ?? []), w]);
    for (const [name, uses] of byName) {
      const info = shapes.get(name);
      if (!info) throw new WeightError(`the library binds param ${name} but its metadata does not list it`);
      const data = await weights.tensor(name, info);
      const rowBytes = data.byteLength / info.shape[0];
      for (const u of uses) {
        const start = (u.rowStart ?? 0) * rowBytes;
        const end = u.rows !== undefined ? start + u.rows * rowBytes : data.byteLength;
        const buf = device.createBuffer(end - start, paramKey(u));
        device.write(buf, padded(data.subarray(start, end)));
        rt.#params.set(paramKey(u), buf);
      }
    }
    // KV cache: per layer [numPages, 2, kvHeads, PAGE_SIZE, headDim], f32 or f16.
    const kv = metadata.kv_cache;
    const layerBytes = opts.numPages * PAGE_SIZE * kvLayerTokenBytes(metadata);
    for (let l = 0; l < kv.layers; l++) rt.kv.push(device.createBuffer(layerBytes, `kv.${l}`));
    // State: one zero-filled buffer a name, at its largest use (kernels leave it zero).
    const states = new Map<string, number>();
    for (const fn of Object.values(plan.functions)) {
      for (const step of fn.steps) {
        for (const b of step.b) if ("state" in b) states.set(b.state, Math.max(states.get(b.state) ?? 0, b.bytes));
      }
    }
    for (const [name, bytes] of states) rt.#states.set(name, device.createBuffer(bytes, name));
    // Scratch slots: within a group, slot i is sized for its largest use.
    const sizes = new Map<string, number[]>();
    for (const [name, fn] of Object.entries(plan.functions)) {
      const g = sizes.get(slotGroup(name)) ?? [];
      fn.slots.forEach((b, i) => (g[i] = Math.max(g[i] ?? 0, b)));
      sizes.set(slotGroup(name), g);
    }
    for (const [group, g] of sizes) {
      rt.#slots.set(group, g.map((b, i) => device.createBuffer(Math.max(b, 4), `${group}.slot${i}`)));
    }
    // Every step's buffers, resolved once: a call only swaps in the inputs it binds itself.
    for (const [name, fn] of Object.entries(plan.functions)) {
      const slots = rt.#slots.get(slotGroup(name))!;
      rt.#stepBuffers.set(name, fn.steps.map((step) => step.b.map((b) => ("slot" in b ? slots[b.slot] : rt.#buffer(b)))));
    }
    return rt;
  }

  fn(name: string): FunctionPlan {
    const f = this.lib.plan.functions[name];
    if (!f) throw new TypeError(`the library has no function "${name}"`);
    return f;
  }

  /**
   * Queue one call: write the inputs, then every step. `vars` gives n, s, m. An input given in
   * `bind` is not written: that device buffer (e.g. another function's output) is bound instead.
   */
  run(
    name: string,
    inputs: Record<string, ArrayBufferView>,
    vars: Vars,
    bind: Record<string, DeviceBuffer> = {},
    /** Inputs whose slots still hold this call's values (written by the previous call of `name`,
     * or by `write`). */
    keep: ReadonlySet<string> = NO_KEEP,
  ): void {
    const fn = this.fn(name);
    const over = this.#writeInputs(name, fn, inputs, vars, bind, keep);
    const lists = over.size === 0 ? this.#stepBuffers.get(name)! : this.#boundLists(name, fn, over);
    fn.steps.forEach((step, i) => {
      const rows = typeof step.rows === "number" ? step.rows : vars[step.rows];
      this.device.dispatch(this.#kernels[step.k], lists[i], rows);
    });
  }

  /**
   * Write inputs of `name` now, for a call that keeps them (`run` with their names in `keep`):
   * a write first submits the work queued so far, so writing before queueing other work leaves
   * that work unsubmitted (the engine writes the sampler's inputs before a step's forward).
   */
  write(name: string, inputs: Record<string, ArrayBufferView>, vars: Vars): void {
    const fn = this.fn(name);
    this.#writeInputs(name, fn, inputs, vars, {}, NO_KEEP, true);
  }

  /** Check `vars` against the bounds and write the inputs neither bound nor kept (with `given`,
   * only those in `inputs`); returns the slots bound to other buffers. */
  #writeInputs(
    name: string,
    fn: FunctionPlan,
    inputs: Record<string, ArrayBufferView>,
    vars: Vars,
    bind: Record<string, DeviceBuffer>,
    keep: ReadonlySet<string>,
    given = false,
  ): Map<number, DeviceBuffer> {
    const slots = this.#slots.get(slotGroup(name))!;
    for (const [k, bound] of Object.entries(fn.bounds) as [SymVar, number][]) {
      if (!(vars[k] >= 1 && vars[k] <= bound)) throw new RangeError(`${name}: ${k} = ${vars[k]} is outside [1, ${bound}]`);
    }
    const over = new Map<number, DeviceBuffer>();
    for (const io of fn.inputs) {
      if (bind[io.name]) {
        over.set(io.slot, bind[io.name]);
        continue;
      }
      if (keep.has(io.name) || (given && !(io.name in inputs))) continue;
      const data = inputs[io.name];
      if (!data) throw new TypeError(`${name}: input "${io.name}" is missing`);
      const want = io.shape.reduce<number>((a, d) => a * (typeof d === "number" ? d : evalDim(d, vars)), 1) * 4;
      if (data.byteLength > slots[io.slot].bytes || (typeof io.shape[0] !== "number" && data.byteLength !== want)) {
        throw new RangeError(`${name}: input "${io.name}" has ${data.byteLength} bytes, expected ${want}`);
      }
      this.device.write(slots[io.slot], data);
    }
    return over;
  }

  /** Each step's buffers of `name` with slots replaced by `over`; the same lists as the last
   * call that bound the same buffers (the device knows a list it has seen: no lookup). */
  #boundLists(name: string, fn: FunctionPlan, over: Map<number, DeviceBuffer>): DeviceBuffer[][] {
    const last = this.#bound.get(name);
    if (last && last.over.size === over.size && [...over].every(([s, b]) => last.over.get(s) === b)) return last.lists;
    const resolved = this.#stepBuffers.get(name)!;
    const lists = fn.steps.map((step, i) => step.b.map((b, j) => ("slot" in b ? over.get(b.slot) ?? resolved[i][j] : resolved[i][j])));
    this.#bound.set(name, { over, lists });
    return lists;
  }

  /** The device buffer that holds output `output` of function `name` after a call. */
  output(name: string, output: string): DeviceBuffer {
    const io = this.fn(name).outputs.find((o) => o.name === output);
    if (!io) throw new TypeError(`${name} has no output "${output}"`);
    return this.#slots.get(slotGroup(name))![io.slot];
  }

  /** Read an output of the last call of `name` (`bytes` of it; default: all at the bounds). */
  async read(name: string, output: string, bytes?: number): Promise<ArrayBuffer> {
    return await this.device.read(this.output(name, output), bytes);
  }

  #buffer(b: BindRef): DeviceBuffer {
    if ("kv" in b) return this.kv[b.kv];
    if ("state" in b) return this.#states.get(b.state)!;
    return this.#params.get(paramKey(b as { param: string }))!;
  }

  destroy(): void {
    this.device.destroy();
  }
}

const NO_KEEP: ReadonlySet<string> = new Set();
const FORWARD = new Set(["embed", "prefill", "decode", "batch_prefill", "batch_decode"]);

/** Functions that never feed one another share scratch slots (the forward functions and their
 * `_small` variants). */
function slotGroup(fn: string): string {
  return FORWARD.has(fn.replace(/_small$/, "")) ? "forward" : fn;
}

function paramKey(b: { param?: string; name?: string; rowStart?: number; rows?: number }): string {
  const name = b.param ?? b.name!;
  return b.rows !== undefined ? `${name}#${b.rowStart}` : name;
}

function padded(data: Uint8Array): Uint8Array {
  if (data.byteLength % 4 === 0 && data.byteOffset % 4 === 0) return data;
  const out = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
  out.set(data);
  return out;
}
