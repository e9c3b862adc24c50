/** Path helpers shared by the engine. @module */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

export function toFileUrl(path: string): URL {
  return pathToFileURL(resolve(path));
}
