import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// Keeps scripts/bench from rotting: the whole harness in --quick mode against
// the real Postgres and NATS, through tsx (no build). Numbers are not checked;
// the run is sized to finish in well under 30 s on an idle machine, and the
// bound below only keeps a stuck run from hanging the suite.
const out = join(tmpdir(), `releasegate-bench-${randomBytes(4).toString("hex")}.md`);
const RUN_TIMEOUT_MS = 120_000;

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
    "runs every benchmark and writes a report with all five sections, the 0.6 line (also with 3 rules), the 1.5 line and the Cedar comparison",
    async () => {
      const { code, stderr } = await runQuickBench();
      expect(code, stderr).toBe(0);
      expect(stderr).toContain("wrote ");
      const report = readFileSync(out, "utf8");
      expect(report).not.toContain("Could not run");
      expect(report).not.toContain("Errors during a run");
      for (const heading of [
        "## 1. EvaluatePolicies and ApproveRelease against the health Check",
        "## 2. Decision-to-signal latency",
        "## 3. Scale: EvaluatePolicies p50 with 1k vs 1M rows",
        "## 4. Memory and start-up",
        "## 5. The pure decision next to Cedar",
      ])
        expect(report).toContain(heading);
      for (const rpc of ["EvaluatePolicies", "EvaluatePolicies with 3 rules", "ApproveRelease"])
        for (const callers of [1, 16]) expect(report).toMatch(new RegExp(`\\| ${rpc} \\| ${callers} \\| [0-9,]+/s \\|.* \\| \\d+\\.\\d\\d \\|`));
      for (const rpc of ["EvaluatePolicies", "EvaluatePolicies with 3 rules"])
        expect(report).toMatch(new RegExp(`^${rpc} at 16 callers reached \\d+\\.\\d\\d of the health Check; the line is ≥ 0\\.6: \\*\\*(met|not met)\\*\\*`, "m"));
      expect(report).toMatch(/\| \d+\.\d\d ms \| \d+\.\d\d ms \| \d+\.\d\d ms \| \d+\.\d\d ms \|/);
      expect(report).toMatch(/p50 at [0-9,]+ rows ÷ at 1,000: \d+\.\d\d; the line is ≤ 1\.5: \*\*(met|not met)\*\*/);
      // The directory's tables were grown, and its queries (eligibility, grants, who may still approve) recorded and EXPLAINed.
      for (const table of ["approver_groups", "approver_group_members", "role_grants"]) expect(report).toMatch(new RegExp(`^select .*"${table}"`, "m"));
      // The statements the server sent in the hot phase (reads, the vote's write, the relay's) were recorded and EXPLAINed.
      expect(report).toMatch(/each of the \d+ distinct statements the server sent .* Sequential scans of a grown table: \*\*none\*\*/);
      expect((report.match(/<details><summary><code>/g) ?? []).length).toBeGreaterThanOrEqual(4);
      expect(report).toMatch(/\| Postgres \+ NATS, after sections 1 and 2 \| \d+ MB \|/);
      expect(report).toMatch(/\| Postgres \+ NATS, empty database \(migrations run\): the server of sections 1 and 2 \| \d+\.\d\d ms \|/);
      expect(report).toMatch(/\| releasegate `evaluatePolicies` \(5 policies\) \| [0-9,]+ ns \| 1\.00 \|/);
      expect(report).toMatch(/\| Cedar `statefulIsAuthorized` \(policy set parsed once\) \| [0-9,]+ ns \| \d+\.\d\d \|/);
      expect(report).toMatch(/\| Cedar `isAuthorized` \(policy set parsed per request\) \| [0-9,]+ ns \| \d+\.\d\d \|/);
      expect(report).toContain("Cedar's paper");
    },
    RUN_TIMEOUT_MS + 10_000,
  );
});
