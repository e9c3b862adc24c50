/**
 * Canonical JSON: object keys sorted by code unit, no whitespace, `undefined` members dropped.
 * Two values that mean the same thing give the same string, so a digest of it can be a cache key.
 * @module
 */

/** Serialise `value` canonically. Throws TypeError for values JSON cannot represent
 * faithfully (functions, symbols, bigints, non-finite numbers). */
export function canonicalJson(value: unknown): string {
  return write(value, "$");
}

function write(value: unknown, path: string): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) {
        throw new TypeError(`canonicalJson: ${path} is ${value}, which JSON cannot represent`);
      }
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) {
        return `[${value.map((v, i) => v === undefined ? "null" : write(v, `${path}[${i}]`))}]`;
      }
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${write(obj[k], `${path}.${k}`)}`)}}`;
    }
    default:
      throw new TypeError(
        `canonicalJson: ${path} is a ${typeof value}, which JSON cannot represent`,
      );
  }
}
