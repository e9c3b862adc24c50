/**
 * Domain errors of the compiler. Each has a `name`, a message that says what was wrong and what
 * to do, and a `cause` where there is one. Bad arguments use the built-in TypeError/RangeError.
 * @module
 */

/** A model config (config.json / mlc-chat-config.json) is malformed or unsupported. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** A feature that exists in MLC-LLM's contract but that Kiln does not implement. */
export class NotImplementedError extends Error {
  override name = "NotImplementedError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Weight files are missing, truncated or do not match the model definition. */
export class WeightError extends Error {
  override name = "WeightError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** A compile stage failed; `stage` names it, `cause` carries the original error. */
export class CompileError extends Error {
  override name = "CompileError";
  constructor(readonly stage: string, message: string, options?: ErrorOptions) {
    super(`compile stage "${stage}" failed: ${message}`, options);
  }
}
