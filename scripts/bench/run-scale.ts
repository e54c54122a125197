/**
 * Runs only section 3 (scale: EvaluatePolicies and the inbox at 1k vs 1M rows)
 * and prints its part of the report, for working on one query without the
 * whole `npm run bench`.
 *
 *   node --import tsx scripts/bench/run-scale.ts [--quick]   # --quick: 1k vs 5k rows
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { FULL, QUICK } from "./load.js";
import { renderReport } from "./report.js";
import { benchScale } from "./scale.js";

const { values } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
const natsUrl = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const dataDir = mkdtempSync(join(tmpdir(), "rg-bench-scale-"));
const notRun = { ok: false, error: "not run (run-scale.ts runs section 3 only)" } as const;
try {
  const scale = await benchScale(values.quick ? QUICK : FULL, natsUrl, dataDir, (p) =>
    process.stderr.write(`[scale] ${JSON.stringify({ rows: p.rows, loadSeconds: p.loadSeconds, evaluateP50: p.evaluate.p50, inbox: { pending: p.inbox.pending, listP50: p.inbox.list.p50, listP99: p.inbox.list.p99, countP50: p.inbox.count.p50, countP99: p.inbox.count.p99, errors: p.inbox.list.errors + p.inbox.count.errors } })}\n`),
  );
  const report = renderReport({ machine: {}, gate: notRun, signal: notRun, scale: { ok: true, value: scale }, gatePeakRssBytes: notRun, startup: notRun, decision: notRun });
  const from = report.indexOf("## 3.");
  process.stdout.write(`${report.slice(from, report.indexOf("## 4.", from))}\n`);
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
