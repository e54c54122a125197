import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const ROOT = process.cwd();
const STAMP = join(ROOT, "dist", ".build-stamp");
const LOCK = join(ROOT, "dist", ".build-lock");

function hashTree(hash: ReturnType<typeof createHash>, dir: string): void {
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) hashTree(hash, path);
    else if (/\.(ts|css|html)$/.test(path)) hash.update(path).update(readFileSync(path));
  }
}

/**
 * Builds `dist/` (npm run build) unless it is already built from the current
 * sources; test files that spawn the built server or CLI share one build
 * through a lock directory, even when vitest runs them in parallel.
 */
export async function ensureBuilt(): Promise<void> {
  const hash = createHash("sha256");
  hashTree(hash, join(ROOT, "src"));
  hashTree(hash, join(ROOT, "scripts"));
  const want = hash.digest("hex");
  const built = () => existsSync(STAMP) && readFileSync(STAMP, "utf8") === want;
  const deadline = Date.now() + 180_000;
  while (!built()) {
    try {
      mkdirSync(join(ROOT, "dist"), { recursive: true });
      mkdirSync(LOCK);
    } catch {
      // Another test file is building: wait for it (a stale lock older than 3 minutes is taken over).
      const lock = statSync(LOCK, { throwIfNoEntry: false });
      if (lock !== undefined && Date.now() - lock.mtimeMs > 180_000) rmSync(LOCK, { force: true, recursive: true });
      if (Date.now() > deadline) throw new Error("timed out waiting for another test's build");
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    try {
      if (!built()) {
        const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
        // tsc emits even with type errors elsewhere (tsc --noEmit in CI reports those).
        await promisify(execFile)(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: ROOT }).catch((err: unknown) => {
          if (!existsSync(join(ROOT, "dist/src/main.js"))) throw err;
        });
        // The page (dist/ui), as `npm run build` builds it after tsc.
        await promisify(execFile)(process.execPath, [join(ROOT, "dist/scripts/build-ui.js")], { cwd: ROOT });
        writeFileSync(STAMP, want);
      }
    } finally {
      rmSync(LOCK, { force: true, recursive: true });
    }
  }
}
