import { CEDAR_POLICIES, type DecisionResult } from "./decision.js";
import type { StartupResult } from "./footprint.js";
import type { GateResult, RatioRow } from "./gate.js";
import type { LoadResult } from "./load.js";
import { type NotifyResult, notifySection } from "./notify.js";
import { GROWN_TABLES, PENDING_EVERY, type ScaleResult } from "./scale.js";
import type { SignalResult } from "./signal.js";

/** A benchmark's outcome: its numbers, or why it could not run. */
export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

export interface BenchReport {
  readonly machine: Readonly<Record<string, string>>;
  readonly gate: Outcome<GateResult>;
  readonly signal: Outcome<SignalResult>;
  readonly scale: Outcome<ScaleResult>;
  /** Peak RSS of the server of sections 1 and 2 after them, bytes. */
  readonly gatePeakRssBytes: Outcome<number>;
  readonly startup: Outcome<StartupResult>;
  readonly decision: Outcome<DecisionResult>;
  /** Webhook delivery throughput next to the outbox relay (absent: not run). */
  readonly notify?: Outcome<NotifyResult>;
}

/** EvaluatePolicies must reach this share of the health Check's throughput at EVALUATE_LINE_CALLERS callers. */
const EVALUATE_LINE = 0.6;
const EVALUATE_LINE_CALLERS = 16;
/** EvaluatePolicies p50 at the large size may be at most this multiple of the small size's. */
const SCALE_LINE = 1.5;

const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)} ms` : "n/a");
const rate = (v: number) => `${Math.round(v).toLocaleString("en-US")}/s`;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const count = (n: number) => n.toLocaleString("en-US");
const ratio = (r: RatioRow) => r.rpc.throughput / r.check.throughput;
const row = (cells: readonly (string | number)[]) => `| ${cells.join(" | ")} |`;
/** A Markdown table; the first column left-aligned, the others right. */
const table = (header: readonly string[], rows: readonly (readonly (string | number)[])[]) => [
  row(header),
  row(header.map((_, i) => (i === 0 ? "---" : "---:"))),
  ...rows.map(row),
  "",
];

function failed(o: Outcome<unknown>): string[] {
  return o.ok ? [] : [`Could not run: \`${o.error.replace(/\s+/g, " ").slice(0, 400)}\``, ""];
}

function section<T>(title: string, o: Outcome<T>, body: (value: T) => string[]): string[] {
  return [`## ${title}`, "", ...(o.ok ? body(o.value) : failed(o))];
}

function errorsNote(results: readonly LoadResult[]): string[] {
  return results.filter((r) => r.errors > 0).map((r) => `Errors during a run: ${r.errors} (first: \`${r.firstError ?? "?"}\`).`);
}

/** The sentence on the 0.6 line for `name`'s rows. */
function evaluateLine(name: string, rs: readonly RatioRow[]): string {
  const line = rs.find((r) => r.callers === EVALUATE_LINE_CALLERS);
  if (line === undefined) return `No run of ${name} at ${EVALUATE_LINE_CALLERS} callers.`;
  return `${name} at ${EVALUATE_LINE_CALLERS} callers reached ${ratio(line).toFixed(2)} of the health Check; the line is ≥ ${EVALUATE_LINE}: **${ratio(line) >= EVALUATE_LINE ? "met" : "not met"}**.`;
}

const gateSection = ({ evaluate, evaluateRules, approve }: GateResult) => {
  const rows = (name: string, rs: readonly RatioRow[]) =>
    rs.map((r) => [name, r.callers, rate(r.check.throughput), ms(r.check.p50), ms(r.check.p99), rate(r.rpc.throughput), ms(r.rpc.p50), ms(r.rpc.p99), ratio(r).toFixed(2)]);
  return [
    "One server on Postgres and NATS, as deployed. Each RPC alternates with the same server's `grpc.health.v1.Health/Check` from the same connections: the Check is what any RPC costs here (transport, interceptors, logging), so the ratio of throughputs says what the RPC's own work costs. EvaluatePolicies: a project with 5 policies on `prod` (2 soak, 2 branch, 1 approval with 3 votes) for a registered intent, all callers on one connection. EvaluatePolicies with 3 rules: the same in a second project whose approval also has three rules (1 from group `security`, 1 from group `sre`, 1 of role `maintainer`, distinct approvers), met by a member of each group and a project-scoped maintainer grant (seeded over the wire with ApproverService). ApproveRelease: votes spread over 64 intents from 32 voters, each on its own connection; each vote writes its history row and outbox event, which the relay publishes to NATS meanwhile.",
    "",
    ...table(
      ["RPC", "callers", "Check rps", "Check p50", "Check p99", "RPC rps", "RPC p50", "RPC p99", "ratio"],
      [...rows("EvaluatePolicies", evaluate), ...rows("EvaluatePolicies with 3 rules", evaluateRules), ...rows("ApproveRelease", approve)],
    ),
    evaluateLine("EvaluatePolicies", evaluate),
    "",
    evaluateLine("EvaluatePolicies with 3 rules", evaluateRules),
    ...errorsNote([...evaluate, ...evaluateRules, ...approve].flatMap((r) => [r.check, r.rpc])),
    "",
  ];
};

const signalSection = (s: SignalResult) => [
  `${s.approvals} sequential approvals on the same server; an ordered JetStream consumer on the server's stream timestamps each \`approval.decided\` event in the client process. Latency is from the ApproveRelease response to the receipt (${s.arrivedBeforeResponse} events arrived before the response, counted as negative).`,
  "",
  ...table(["p50", "p99", "max", "request → receipt p50"], [[ms(s.p50), ms(s.p99), ms(s.max), ms(s.requestToReceiptP50)]]),
];

const scaleSection = ({ small, large, plans, seqScans }: ScaleResult) => [
  `A server of its own, its database connection through a recorder of the Postgres protocol. Each of ${GROWN_TABLES.map((t) => `\`${t}\``).join(", ")} grown with \`INSERT … SELECT generate_series\` (1 in 100 rows in the evaluated project or its organisation; a group, a membership and a project grant per intent's author, most of them expired), then \`VACUUM ANALYZE\`; one caller, evaluating the project whose approval has the three rules of section 1.`,
  "",
  ...table(
    ["rows per table", "load time", "Evaluate p50", "Evaluate p99", "rps"],
    [small, large].map((p) => [count(p.rows), `${p.loadSeconds.toFixed(1)} s`, ms(p.evaluate.p50), ms(p.evaluate.p99), rate(p.evaluate.throughput)]),
  ),
  `p50 at ${count(large.rows)} rows ÷ at ${count(small.rows)}: ${(large.evaluate.p50 / small.evaluate.p50).toFixed(2)}; the line is ≤ ${SCALE_LINE}: **${large.evaluate.p50 / small.evaluate.p50 <= SCALE_LINE ? "met" : "not met"}**.`,
  "",
  `The approver's inbox at the same sizes: every grown intent has an approval request on prod, pending for 1 in ${PENDING_EVERY} (in the evaluated project and across the others), approved for the rest; one caller, a member of group security, asking for the first page (50) of its inbox and for its count in the evaluated organisation.`,
  "",
  ...table(
    ["rows per table", "pending in the inbox", "ListPendingApprovals p50", "p99", "CountPendingApprovals p50", "p99"],
    [small, large].map((p) => [count(p.rows), count(p.inbox.pending), ms(p.inbox.list.p50), ms(p.inbox.list.p99), ms(p.inbox.count.p50), ms(p.inbox.count.p99)]),
  ),
  `Inbox p50 at ${count(large.rows)} rows ÷ at ${count(small.rows)}: list ${(large.inbox.list.p50 / small.inbox.list.p50).toFixed(2)}, count ${(large.inbox.count.p50 / small.inbox.count.p50).toFixed(2)}.`,
  "",
  `Then, at ${count(large.rows)} rows, EvaluatePolicies, two votes on a fresh intent from a group member and a grantee (opening its approval request; the relay claiming, publishing and marking their events), who may still approve, a Watch resumed after an event, a page of the approval history and two inbox pages and its count were called over the wire, and each of the ${plans.length} distinct statements the server sent for them was run again under \`EXPLAIN ANALYZE\` with its recorded parameters (rolled back; plain \`EXPLAIN\` for a write whose unique key the hot phase already committed): a new query is covered without changing the benchmark. Sequential scans of a grown table: ${seqScans.length === 0 ? "**none**" : seqScans.join("; ")}.`,
  "",
  ...plans.flatMap(({ sql, plan }) => [`<details><summary><code>${sql.slice(0, 90).replace(/</g, "&lt;")}…</code></summary>`, "", "```", sql, "", plan, "```", "", "</details>", ""]),
  ...errorsNote([small.evaluate, large.evaluate, small.inbox.list, small.inbox.count, large.inbox.list, large.inbox.count]),
];

function footprintSection(r: BenchReport): string[] {
  const rss: string[][] = [];
  if (r.gatePeakRssBytes.ok) rss.push(["Postgres + NATS, after sections 1 and 2", mb(r.gatePeakRssBytes.value)]);
  if (r.scale.ok) rss.push([`Postgres + NATS, after section 3 (${count(r.scale.value.large.rows)} rows)`, mb(r.scale.value.peakRssBytes)]);
  return [
    "Peak resident set size (VmHWM) of the server process, run with the Node flags of `npm start`.",
    "",
    ...table(["server", "peak RSS"], rss),
    ...failed(r.gatePeakRssBytes),
    "Start-up: from spawning the server to its \"listening\" log line (Node start, module load, database open, migrations, bind); medians.",
    "",
    ...(r.startup.ok ? table(["database", "start-up"], r.startup.value.map((s) => [s.kind, ms(s.ms)])) : failed(r.startup)),
  ];
}

const decisionSection = (d: DecisionResult) => [
  `The same 5 rules and the same facts, in this process, interleaved (tinybench, a sample timing up to 100 decisions; median of ${d.rounds} round(s)' medians). releasegate: \`evaluatePolicies\` with the branch patterns compiled, as its policy cache holds them; its answer has a verdict and a sentence per policy. Cedar ${d.cedarVersion} (\`@cedar-policy/cedar-wasm\`, Cedar's Rust evaluator compiled to WebAssembly): a \`permit\` for deploys to prod and one \`forbid … unless\` per rule, so a request is allowed exactly when no rule fails and the forbids that fired name the failed rules. Cedar has no clock and no regular expressions, so each request's context carries the elapsed seconds since each deploy (computed per request from the same facts, inside the timed call; a missing deploy fails the rule, as here), the branch (\`^main$\` is \`==\`, \`^(main|release/[0-9.]+)$\` is \`== "main" || like "release/*"\`, looser on release branches) and the count of approvals. Both sets were checked to fail the same rules on ${d.equivalenceCases} sets of facts before timing.`,
  "",
  ...table(
    ["evaluator", "median per decision", "÷ releasegate"],
    (
      [
        ["releasegate `evaluatePolicies` (5 policies)", d.ns.releasegate],
        ["Cedar `statefulIsAuthorized` (policy set parsed once)", d.ns.cedarPreparsed],
        ["Cedar `isAuthorized` (policy set parsed per request)", d.ns.cedarParsing],
      ] as const
    ).map(([name, v]) => [name, `${count(Math.round(v))} ns`, (v / d.ns.releasegate).toFixed(2)]),
  ),
  "Published anchor, for reference (not measured here): Cedar's paper (Cutler et al., OOPSLA 2024; arXiv:2403.04651) reports a median of 4–11 µs per authorization request for its Rust evaluator on its benchmark policy sets. The Cedar rows above include the crossing between JavaScript and WebAssembly (the request in, the answer out).",
  "",
  ...["<details><summary>The Cedar policy set</summary>", "", "```cedar", ...Object.entries(CEDAR_POLICIES).map(([id, text]) => `// ${id}\n${text}`), "```", "", "</details>", ""],
];

/** The whole of docs/benchmarks.md. */
export function renderReport(r: BenchReport): string {
  return [
    "# Benchmarks",
    "",
    "Generated by `npm run bench` (scripts in `scripts/bench/`); do not edit by hand. Every ratio is against a ceiling measured in the same run on the same machine. CI runs only the short smoke run (`npm run bench -- --quick`); no number fails a build.",
    "",
    "## Machine and run",
    "",
    ...Object.entries(r.machine).map(([k, v]) => `- ${k}: ${v}`),
    "",
    ...section("1. EvaluatePolicies and ApproveRelease against the health Check", r.gate, gateSection),
    ...section("2. Decision-to-signal latency", r.signal, signalSection),
    ...section("3. Scale: EvaluatePolicies p50 with 1k vs 1M rows", r.scale, scaleSection),
    "## 4. Memory and start-up",
    "",
    ...footprintSection(r),
    ...section("5. The pure decision next to Cedar", r.decision, decisionSection),
    ...(r.notify === undefined ? [] : section("6. Webhook delivery throughput next to the outbox relay", r.notify, notifySection)),
  ].join("\n");
}
