import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "./support/build.js";
import { CLI, runProcess } from "./support/cli.js";
import { startTestServer, TEST_JWT_SECRET, type TestServer, token } from "./support/server.js";

/** Every ```sh block right after a `<!-- doc-test -->` line in the README and docs/. */
function docBlocks(): { file: string; index: number; script: string }[] {
  const files = ["README.md", ...readdirSync("docs").filter((f) => f.endsWith(".md")).map((f) => join("docs", f))];
  return files.flatMap((file) =>
    [...readFileSync(file, "utf8").matchAll(/<!-- doc-test -->\n```sh\n([\s\S]*?)```/g)].map((m, index) => ({
      file,
      index,
      script: m[1] ?? "",
    })),
  );
}

const blocks = docBlocks();
let server: TestServer;
let bin: string;
let env: Record<string, string>;

beforeAll(async () => {
  await ensureBuilt();
  server = await startTestServer();
  // `releasegate` on the PATH, as `npm link` would put it.
  bin = mkdtempSync(join(tmpdir(), "rg-docs-bin-"));
  writeFileSync(join(bin, "releasegate"), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
  chmodSync(join(bin, "releasegate"), 0o755);
  env = {
    PATH: `${bin}:${process.env.PATH}`,
    RELEASEGATE_JWT_SECRET: TEST_JWT_SECRET,
    RELEASEGATE_SERVER: server.baseUrl,
    RELEASEGATE_TOKEN: await token({ sub: "ada", orgs: { acme: "admin" } }),
    // `releasegate login` in a block saves here, never in the real home.
    RELEASEGATE_CONFIG: join(bin, "config.json"),
  };
}, 240_000);
afterAll(async () => {
  await server?.stop();
  if (bin) rmSync(bin, { recursive: true, force: true });
});

async function runBash(script: string): Promise<{ code: number | null; output: string }> {
  const { code, stdout, stderr } = await runProcess("bash", ["-euo", "pipefail", "-c", script], env);
  return { code, output: stdout + stderr };
}

describe("shell blocks marked doc-test in README.md and docs/", () => {
  it("there are blocks to run in the README, the operator guide, the API guide and the CLI guide", () => {
    expect(new Set(blocks.map((b) => b.file))).toEqual(new Set(["README.md", "docs/operator.md", "docs/api.md", "docs/cli.md"]));
  });

  it.each(blocks.map((b) => [`${b.file} #${b.index + 1}`, b.script] as const))("%s runs", async (_name, script) => {
    const ported = script
      .replaceAll("localhost:50051", `127.0.0.1:${server.app.port}`)
      .replaceAll("localhost:9464", `127.0.0.1:${server.app.adminPort}`);
    const { code, output } = await runBash(ported);
    expect(output).not.toMatch(/^error: /m);
    expect(code, output).toBe(0);
  }, 60_000);
});
