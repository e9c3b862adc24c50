/**
 * `serve()`: run an app on `Deno.serve`, with graceful shutdown on SIGINT/SIGTERM or `signal`:
 * stop accepting, give in-flight requests (streams too) `graceMs` to finish, then cancel them
 * (their generations are aborted through the `shutdown` signal every request sees).
 * @module
 */
import type { ServerEnv } from "./context.ts";

export interface ServeOptions {
  readonly app: { fetch(req: Request, env: ServerEnv): Response | Promise<Response> };
  /** Default 127.0.0.1 (only this machine). */
  readonly hostname?: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Aborting it shuts the server down. */
  readonly signal?: AbortSignal;
  /** How long in-flight requests may run on after shutdown starts (default 10 s). */
  readonly graceMs?: number;
  /** Shut down on SIGINT/SIGTERM (default true). */
  readonly handleSignals?: boolean;
  readonly onListen?: (addr: { hostname: string; port: number }) => void;
}

export interface RunningServer {
  readonly hostname: string;
  readonly port: number;
  /** Resolves once the server has stopped and every request has ended. */
  readonly finished: Promise<void>;
  /** Start the graceful shutdown (idempotent); resolves like `finished`. */
  shutdown(): Promise<void>;
}

/** Serve `app` until shut down. */
export function serve(opts: ServeOptions): RunningServer {
  const graceMs = opts.graceMs ?? 10_000;
  if (!(graceMs >= 0)) throw new RangeError(`serve: graceMs must be >= 0, got ${graceMs}`);
  const cancel = new AbortController();
  const env: ServerEnv = { shutdown: cancel.signal };
  const server = Deno.serve(
    {
      hostname: opts.hostname ?? "127.0.0.1",
      port: opts.port,
      onListen: (addr) => opts.onListen?.({ hostname: addr.hostname, port: addr.port }),
    },
    (req) => opts.app.fetch(req, env),
  );
  const addr = server.addr as Deno.NetAddr;
  const signals: Deno.Signal[] = opts.handleSignals === false
    ? []
    : Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM"];
  let stopping: Promise<void> | null = null;
  const shutdown = (): Promise<void> => {
    if (stopping) return stopping;
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    opts.signal?.removeEventListener("abort", onAbort);
    const timer = setTimeout(() => cancel.abort(), graceMs);
    stopping = server.shutdown().then(() => server.finished).finally(() => {
      clearTimeout(timer);
      cancel.abort();
    });
    return stopping;
  };
  const onSignal = () => void shutdown();
  const onAbort = () => void shutdown();
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  if (opts.signal?.aborted) void shutdown();
  else opts.signal?.addEventListener("abort", onAbort, { once: true });
  return {
    hostname: addr.hostname,
    port: addr.port,
    finished: server.finished.then(() => stopping ?? undefined),
    shutdown,
  };
}
