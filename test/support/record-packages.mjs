// Preloaded into a spawned server (`node --import this-file`): on exit it
// writes to $RECORD_PACKAGES_TO the npm packages the process loaded, as a
// JSON array. ES modules are seen by a resolve hook (Node runs it on its
// loader thread, hence the message port); CommonJS ones by require's cache,
// which hooks do not see on Node 20.
import { writeFileSync } from "node:fs";
import { createRequire, register } from "node:module";
import { MessageChannel } from "node:worker_threads";

const out = process.env.RECORD_PACKAGES_TO;
if (out === undefined) throw new Error("RECORD_PACKAGES_TO is not set");

const hook = `
let port;
export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  port.postMessage(resolved.url);
  return resolved;
}`;
const urls = new Set();
const { port1, port2 } = new MessageChannel();
port1.on("message", (url) => urls.add(url));
port1.unref();
register(`data:text/javascript,${encodeURIComponent(hook)}`, {
  parentURL: import.meta.url,
  data: { port: port2 },
  transferList: [port2],
});

function packageOf(path) {
  return /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1];
}

process.on("exit", () => {
  const paths = [...urls, ...Object.keys(createRequire(import.meta.url).cache)];
  const packages = new Set(paths.map(packageOf).filter((p) => p !== undefined));
  writeFileSync(out, JSON.stringify([...packages].sort()));
});
