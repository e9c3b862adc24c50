/**
 * `resolveModelPath()`: a model named in a request, resolved to a real path that must lie
 * inside one of the configured model roots (`..` and symlinks cannot escape them).
 * @module
 */
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { ApiError } from "./errors.ts";

/** Real paths of `roots`; throws TypeError for a root that does not exist. */
export async function realRoots(roots: readonly string[]): Promise<string[]> {
  return await Promise.all(roots.map(async (r) => {
    try {
      return await Deno.realPath(r);
    } catch (e) {
      throw new TypeError(`model root ${r} does not exist or cannot be read`, { cause: e });
    }
  }));
}

/**
 * The real path of `model` (absolute, or relative to a root: the first root holding it).
 * 403 when it (or its real path, through symlinks) is outside every root, 404
 * `model_not_found` when it does not exist inside one. `roots` must be real paths.
 */
export async function resolveModelPath(model: string, roots: readonly string[]): Promise<string> {
  if (roots.length === 0) {
    throw new ApiError(
      403,
      "no model roots are configured: prewarm is disabled",
      "permission_error",
      "model",
      "model_outside_roots",
    );
  }
  const candidates = isAbsolute(model) ? [model] : roots.map((r) => join(r, model));
  const outside = () =>
    new ApiError(
      403,
      `the model path '${model}' resolves outside the configured model roots`,
      "permission_error",
      "model",
      "model_outside_roots",
    );
  for (const candidate of candidates) {
    const real = await Deno.realPath(candidate).catch(() => null);
    if (real === null) {
      // Say nothing about what exists outside the roots.
      if (!roots.some((root) => inside(resolve(candidate), root))) throw outside();
      continue;
    }
    if (!roots.some((root) => inside(real, root))) throw outside();
    return real;
  }
  throw new ApiError(
    404,
    `the model '${model}' was not found in the model roots`,
    "invalid_request_error",
    "model",
    "model_not_found",
  );
}

function inside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!isAbsolute(rel) && rel !== ".." && !rel.startsWith(`..${sep}`));
}
