import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(import.meta.url);
/** The repository root: two levels up from scripts/bench/, three from dist/scripts/bench/. */
const ROOT = join(dirname(here), ...(here.endsWith(".ts") ? ["..", ".."] : ["..", "..", ".."]));

/** `npm start` is not `node [--flag ...] dist/src/main.js`. */
export class StartScriptError extends Error {
  override readonly name = "StartScriptError";
}

/**
 * The Node flags `npm start` gives the server (V8 heap sizing), read from
 * package.json so a benchmark measures the server as it ships rather than a
 * copy of the flags that could drift.
 */
export function startNodeFlags(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts?: { start?: string } };
  const start = pkg.scripts?.start ?? "";
  const match = /^node((?:\s+--\S+)*)\s+dist\/src\/main\.js$/.exec(start.trim());
  if (match === null) throw new StartScriptError(`package.json "start" is not \`node [--flag ...] dist/src/main.js\`: ${start}`);
  return (match[1] ?? "").split(/\s+/).filter((flag) => flag !== "");
}
