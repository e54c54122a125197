/**
 * Turns the counters the reliability suite leaves behind (one JSON file per
 * test file, see test/support/reliability-report.ts) into docs/reliability.md.
 *
 *   npm test                      # or only the suite's files
 *   npm run reliability:report    # rewrites docs/reliability.md
 *
 * RELIABILITY_REPORT_DIR overrides where the counters are read from.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";

interface Row {
  readonly check: string;
  readonly count: number;
  readonly held: string;
}
interface SuiteReport {
  readonly suite: string;
  readonly database: string;
  readonly finishedAt: string;
  readonly rows: readonly Row[];
}

/** Suite → test file and one line on what it attacks, in table order. */
const SUITES: readonly { suite: string; file: string; about: string }[] = [
  { suite: "fuzz-requests", file: "test/fuzz-requests.test.ts", about: "typed requests of every RPC, generated from the descriptors" },
  { suite: "fuzz-wire", file: "test/fuzz-wire.test.ts", about: "bytes that are not protobuf, JSON that does not fit" },
  { suite: "fuzz-branch-patterns", file: "test/fuzz-branch-patterns.test.ts", about: "catastrophic-backtracking branch patterns" },
  { suite: "security-authn", file: "test/security-authn.test.ts", about: "bad credentials on every RPC" },
  { suite: "security-authz", file: "test/security-authz.test.ts", about: "role matrix on every RPC, four-eyes rules" },
  { suite: "security-injection", file: "test/security-injection.test.ts", about: "SQL-injection and quoting probes in free text" },
  { suite: "model-gate-safety", file: "test/model/gate-safety.test.ts", about: "random command sequences against a reference model" },
  { suite: "reliability-concurrency", file: "test/reliability-concurrency.test.ts", about: "vote bursts on two replicas, one database" },
  { suite: "fault-nats", file: "test/fault-nats.test.ts", about: "NATS killed and restarted mid-burst" },
  { suite: "fault-postgres", file: "test/fault-postgres.test.ts", about: "Postgres connections killed, server crashed mid-burst" },
  { suite: "fault-sigkill", file: "test/fault-sigkill.test.ts", about: "the server process SIGKILLed mid-burst" },
];

function reportDir(): string {
  return process.env.RELIABILITY_REPORT_DIR ?? join(tmpdir(), "releasegate-reliability");
}

function readReports(dir: string): Map<string, SuiteReport> {
  const reports = new Map<string, SuiteReport>();
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith(".json"));
  } catch {
    // No run yet: every suite shows as not run.
  }
  for (const f of files) {
    const report = JSON.parse(readFileSync(join(dir, f), "utf8")) as SuiteReport;
    reports.set(report.suite, report);
  }
  return reports;
}

const cell = (s: string) => s.replaceAll("|", "\\|");

function render(reports: Map<string, SuiteReport>): string {
  const lines: string[] = [];
  let total = 0;
  for (const { suite, file } of SUITES) {
    const report = reports.get(suite);
    if (report === undefined) {
      lines.push(`| \`${suite}\` | not run | – | – |`);
      continue;
    }
    for (const row of report.rows) {
      total += row.count;
      lines.push(`| [\`${suite}\`](../${file}) (${report.database}) | ${cell(row.check)} | ${row.count} | ${cell(row.held)} |`);
    }
  }
  const known = new Set(SUITES.map((s) => s.suite));
  for (const [suite, report] of reports) {
    if (known.has(suite)) continue;
    for (const row of report.rows) {
      total += row.count;
      lines.push(`| \`${suite}\` (${report.database}) | ${cell(row.check)} | ${row.count} | ${cell(row.held)} |`);
    }
  }
  const runs = [...reports.values()];
  const databases = [...new Set(runs.map((r) => r.database))].join(", ") || "–";
  const latest = runs.map((r) => r.finishedAt).sort().at(-1) ?? "–";
  const cpu = cpus();
  return `# Reliability and security suite

What the suite in \`test/\` tried against a real server (real Postgres, PGlite
or NATS, over the real wire) and what held. Every row is a count of cases that
ran to the end of a passing assertion; a failing test adds nothing.
Regenerate with:

\`\`\`sh
npm test                      # or: npx vitest run test/fuzz-* test/security-* test/model test/reliability-* test/fault-*
npm run reliability:report    # rewrites this file from the counters the tests left
\`\`\`

Last run: ${latest} · database: ${databases} · ${cpu.length} × ${cpu[0]?.model.trim() ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB · Node ${process.version}

| Suite (database) | What was tried | Count | What held |
| --- | --- | ---: | --- |
${lines.join("\n")}
| **total** | | **${total}** | |

## Suites

${SUITES.map((s) => `- \`${s.suite}\` (\`${s.file}\`): ${s.about}.`).join("\n")}

Longer runs: \`FUZZ_RUNS\` (cases per RPC and protocol, default 30), \`FUZZ_SEED\`,
\`MODEL_RUNS\` / \`MODEL_STEPS\` / \`MODEL_SEED\` (default 300 sequences × 20
commands; a failure prints its seed and the steps), \`BURST_CLIENTS\` /
\`BURST_OPS\` (default 60 × 6).

## Bugs the suite found (fixed)

- NUL (\`\\u0000\`) in a release intent's branch, version or author answered
  INTERNAL (Postgres text cannot hold NUL): now INVALID_ARGUMENT naming the
  field; SQLSTATE class 22 (data exceptions) maps to INVALID_ARGUMENT.
- Request bytes that are not protobuf (or a compressed gRPC envelope without
  \`grpc-encoding\`) answered INTERNAL (connect-es, like grpc-go): now
  INVALID_ARGUMENT on gRPC, gRPC-Web and Connect (unary and streaming), via
  \`src/server/node-handler.ts\`.
- A pooled Postgres client whose connection dropped inside a transaction
  emitted an unhandled \`error\` event: the whole server process crashed on a
  Postgres restart. Every pool client now has an error listener.
- gRPC calls took ~50 ms each: the HTTP/1.1-or-HTTP/2 sniffing socket did not
  set TCP_NODELAY (Nagle + delayed ACK).

## Known limits

- After a Postgres restart, Watch streams are silent until the event hub's
  LISTEN self-check reconnects (up to 30 s + 5 s); events committed in that
  gap reach NATS/JetStream but not Watch subscribers. The policy cache's
  LISTEN is not re-established; its 5 s TTL bounds staleness across replicas.
`;
}

// npm runs scripts from the package root.
const out = join(process.cwd(), "docs", "reliability.md");
writeFileSync(out, render(readReports(reportDir())));
console.log(`wrote ${out}`);
