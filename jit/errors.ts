/**
 * Domain errors of the JIT runtime loader. Each has a `name`, a message that says what was
 * wrong and what to do, and a `cause` where there is one. Compile failures are not wrapped:
 * the compiler's own `CompileError` (stage, message, cause) reaches the caller as it is.
 * @module
 */

/** The policy forbids building a missing (or unusable) entry. Carries the key and its inputs. */
export class CacheMissError extends Error {
  override name = "CacheMissError";
  constructor(
    readonly key: string,
    readonly inputs: Record<string, unknown>,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A cache entry or weight folder failed verification and cannot be rebuilt under the policy. */
export class IntegrityError extends Error {
  override name = "IntegrityError";
  constructor(readonly path: string, readonly problems: string[], message: string) {
    super(message);
  }
}

/** A lock stayed held by a live process for longer than the caller was willing to wait. */
export class LockTimeoutError extends Error {
  override name = "LockTimeoutError";
  constructor(readonly lockPath: string, message: string) {
    super(message);
  }
}

/** The requested target cannot be provided (no adapter for `--target webgpu`, a bad description). */
export class TargetError extends Error {
  override name = "TargetError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** A verified library could not be imported (a compiler bug: the artifact is consistent but broken). */
export class LibraryLoadError extends Error {
  override name = "LibraryLoadError";
  constructor(readonly path: string, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
