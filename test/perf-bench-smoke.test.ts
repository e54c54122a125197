import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// Keeps scripts/bench from rotting: the whole harness in --quick mode against
// the real Postgres and NATS, through tsx (no build). Numbers are not checked.
const out = join(tmpdir(), `releasegate-bench-${randomBytes(4).toString("hex")}.md`);
const RUN_TIMEOUT_MS = 150_000;

afterAll(() => rmSync(out, { force: true }));

function runQuickBench(): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "scripts/bench/run.ts", "--quick", "--out", out], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`bench --quick did not finish in ${RUN_TIMEOUT_MS} ms:\n${stderr}`));
    }, RUN_TIMEOUT_MS);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe("npm run bench -- --quick", () => {
  it(
    "runs every benchmark and writes a report with all six sections and their verdicts",
    async () => {
      const { code, stderr } = await runQuickBench();
      expect(code, stderr).toBe(0);
      expect(stderr).toContain("wrote ");
      const report = readFileSync(out, "utf8");
      expect(report).not.toContain("Could not run");
      expect(report).not.toContain("Errors during a run");
      for (const heading of [
        "## 1. EvaluatePolicies vs the transport ceiling",
        "## 2. ApproveRelease vs the database ceiling",
        "## 3. Decision-to-signal latency",
        "## 4. Scale: EvaluatePolicies p50 with few vs many rows",
        "## 5. Memory and start-up",
        "## 6. The pure decision",
      ])
        expect(report).toContain(heading);
      expect(report).toMatch(/Target ≥ 0\.6 of the ceiling: \*\*(met|not met)\*\*/);
      expect(report).toMatch(/Ratio \d+\.\d\d; target ≥ 0\.5/);
      // Machine CPU per call (/proc/stat) and the framework floor process made it into the report.
      expect(report).toMatch(/A vote cost the machine \d+\.\d\d ms, a bare transaction \d+\.\d\d ms/);
      expect(report).toMatch(/Of a vote's machine CPU, Postgres alone spent \d+\.\d\d ms/);
      expect(report).toMatch(/Its one database read, issued alone from outside the server .* takes \d+\.\d\d ms \(p50\)/);
      expect(report).toMatch(/The same RPC for an environment without policies, which reads nothing .* answered in \d+\.\d\d ms/);
      expect(report).toMatch(/\| framework floor \(connect-node, trivial Check\) \| [0-9,]+\/s \|/);
      expect(report).toMatch(/Targets p50 < 5 ms: \*\*(met|not met)\*\*/);
      expect(report).toMatch(/Sequential scans in the hot statements \(EXPLAIN ANALYZE at [0-9,]+ rows, below\): none/);
      expect(report).toMatch(/\| PGlite, existing data directory \| \d+\.\d\d ms \|/);
      expect(report).toMatch(/\| \d+\.\d\d µs \| \d+\.\d\d µs \|/);
    },
    RUN_TIMEOUT_MS + 10_000,
  );
});
