import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { pendingRequestsByEnvironment } from "./db/approval-request.repository.js";
import type { Database } from "./db/database.js";
import { outboxBacklog, PENDING_SCAN_PER_GATE, PENDING_WINDOW_DAYS, pendingApprovalAges } from "./metrics-queries.js";

/** RPC latency buckets, in seconds. */
const RPC_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** How long releases wait for approval, in seconds: one minute to two weeks. */
const PENDING_SECONDS_BUCKETS = [60, 300, 900, 3_600, 4 * 3_600, 12 * 3_600, 86_400, 3 * 86_400, 7 * 86_400, 14 * 86_400];

/**
 * The server's Prometheus metrics, on a registry of their own (one per App,
 * so several servers in one process do not clash).
 */
export interface Metrics {
  readonly registry: Registry;
  /** `rpc_requests_total{service, method, code}`: finished RPCs. */
  readonly rpcRequests: Counter<"service" | "method" | "code">;
  /** `rpc_duration_seconds{service, method, code}`: handling time. */
  readonly rpcDuration: Histogram<"service" | "method" | "code">;
  /** `rpc_in_flight`: RPCs being handled now. */
  readonly rpcInFlight: Gauge;
  /** `policy_evaluations_total{policy_type, decision}`: per-policy results of EvaluatePolicies (passed/blocked). */
  readonly policyDecisions: Counter<"policy_type" | "decision">;
  /** `approval_decisions_total{kind, decision}`: votes cast (peer/admin_override × approved/rejected). */
  readonly approvalDecisions: Counter<"kind" | "decision">;
  /** `approval_vote_conflicts_total`: votes whose optimistic write lost to another vote on the intent (redone under the row lock). */
  readonly voteConflicts: Counter;
  /** `outbox_relay_publish_errors_total`: failed NATS publish attempts (retried). */
  readonly relayPublishErrors: Counter;
  /** `outbox_relay_published_total`: events published to NATS. */
  readonly relayPublished: Counter;
  /** `watch_replayed_events_total`: events replayed to WatchApprovalEvents streams that resumed. */
  readonly watchReplayed: Counter;
  /** `watch_feed_interruptions_total`: times the event feed's LISTEN session was re-established (open Watch streams ended). */
  readonly watchFeedInterruptions: Counter;
  /** `break_glass_total{organisation, project, environment}`: approval gates opened by an admin's break-glass. */
  readonly breakGlass: Counter<"organisation" | "project" | "environment">;
  /** `supersessions_total{organisation, project, environment}`: pending approval requests a newer release superseded. */
  readonly supersessions: Counter<"organisation" | "project" | "environment">;
  /** `approval_requests_expired_total{organisation, project, environment}`: requests this replica's reaper expired. */
  readonly requestsExpired: Counter<"organisation" | "project" | "environment">;
}

/** Metric name prefix. */
export const METRICS_PREFIX = "releasegate_";

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRICS_PREFIX });
  const registers = [registry];
  return {
    registry,
    rpcRequests: new Counter({
      name: `${METRICS_PREFIX}rpc_requests_total`,
      help: "RPCs handled, by service, method and gRPC code name",
      labelNames: ["service", "method", "code"],
      registers,
    }),
    rpcDuration: new Histogram({
      name: `${METRICS_PREFIX}rpc_duration_seconds`,
      help: "RPC handling time in seconds, by service, method and gRPC code name",
      labelNames: ["service", "method", "code"],
      buckets: RPC_SECONDS_BUCKETS,
      registers,
    }),
    rpcInFlight: new Gauge({
      name: `${METRICS_PREFIX}rpc_in_flight`,
      help: "RPCs being handled now",
      registers,
    }),
    policyDecisions: new Counter({
      name: `${METRICS_PREFIX}policy_evaluations_total`,
      help: "Policy results returned by EvaluatePolicies, by policy type and decision (passed/blocked)",
      labelNames: ["policy_type", "decision"],
      registers,
    }),
    approvalDecisions: new Counter({
      name: `${METRICS_PREFIX}approval_decisions_total`,
      help: "Approval votes cast, by kind (peer/admin_override) and decision (approved/rejected)",
      labelNames: ["kind", "decision"],
      registers,
    }),
    relayPublishErrors: new Counter({
      name: `${METRICS_PREFIX}outbox_relay_publish_errors_total`,
      help: "Failed attempts to publish an outbox event to NATS (the event is retried)",
      registers,
    }),
    voteConflicts: new Counter({
      name: `${METRICS_PREFIX}approval_vote_conflicts_total`,
      help: "Votes whose optimistic write lost to a concurrent vote on the same intent and were redone under the intent row lock",
      registers,
    }),
    relayPublished: new Counter({
      name: `${METRICS_PREFIX}outbox_relay_published_total`,
      help: "Outbox events published to NATS",
      registers,
    }),
    watchReplayed: new Counter({
      name: `${METRICS_PREFIX}watch_replayed_events_total`,
      help: "Events replayed from the outbox to WatchApprovalEvents streams that resumed after an event",
      registers,
    }),
    watchFeedInterruptions: new Counter({
      name: `${METRICS_PREFIX}watch_feed_interruptions_total`,
      help: "Times this replica's approval event feed (its outbox LISTEN session) was re-established; open Watch streams ended UNAVAILABLE",
      registers,
    }),
    breakGlass: new Counter({
      name: `${METRICS_PREFIX}break_glass_total`,
      help: "Approval gates opened by an organisation admin's break-glass (BreakGlassService), by organisation, project and environment; every one deserves a look",
      labelNames: ["organisation", "project", "environment"],
      registers,
    }),
    supersessions: new Counter({
      name: `${METRICS_PREFIX}supersessions_total`,
      help: "Pending approval requests superseded by a newer release intent (supersede-pending policies), by organisation, project and environment",
      labelNames: ["organisation", "project", "environment"],
      registers,
    }),
    requestsExpired: new Counter({
      name: `${METRICS_PREFIX}approval_requests_expired_total`,
      help: "Approval requests this replica's reaper expired (request timeout), by organisation, project and environment (sum over replicas)",
      labelNames: ["organisation", "project", "environment"],
      registers,
    }),
  };
}

/**
 * Registers the gauges read from the database at scrape time: the outbox
 * backlog, pending approvals and the pool. They describe the shared database,
 * so every replica reports the same values (aggregate with max, not sum).
 */
export function registerDatabaseMetrics(metrics: Metrics, database: Database): void {
  const registers = [metrics.registry];
  const db = database.db;
  // Two metrics read each query: run it once per scrape.
  // A failed query (database down) reports NaN instead of failing the whole scrape.
  const backlog = oncePerScrape(() =>
    outboxBacklog(db).catch(() => ({ depth: Number.NaN, oldestAgeSeconds: Number.NaN })),
  );
  const pendingAges = oncePerScrape(() => pendingApprovalAges(db).catch(() => undefined));
  new Gauge({
    name: `${METRICS_PREFIX}outbox_depth`,
    help: "Outbox events not yet published to NATS",
    registers,
    async collect() {
      this.set((await backlog()).depth);
    },
  });
  new Gauge({
    name: `${METRICS_PREFIX}outbox_oldest_unpublished_age_seconds`,
    help: "Age of the oldest outbox event not yet published, in seconds (0 when none)",
    registers,
    async collect() {
      this.set((await backlog()).oldestAgeSeconds);
    },
  });
  new Gauge({
    name: `${METRICS_PREFIX}approvals_pending`,
    help: `Release intents waiting for approval to an environment gated by an external-approval policy, among each gated environment's ${PENDING_SCAN_PER_GATE} most recent intents of its project (last ${PENDING_WINDOW_DAYS} days)`,
    registers,
    async collect() {
      this.set((await pendingAges())?.length ?? Number.NaN);
    },
  });
  new Histogram({
    name: `${METRICS_PREFIX}approvals_pending_age_seconds`,
    help: "How long the releases counted by approvals_pending have waited so far, in seconds (recomputed at each scrape)",
    buckets: PENDING_SECONDS_BUCKETS,
    registers,
    async collect() {
      this.reset();
      for (const age of (await pendingAges()) ?? []) this.observe(age);
    },
  });
  const pendingRequests = oncePerScrape(() => pendingRequestsByEnvironment(db).catch(() => undefined));
  for (const [name, help, value] of [
    ["approval_requests_pending", "Pending approval requests by organisation, project and environment (exact)", "count"],
    [
      "approval_requests_pending_oldest_age_seconds",
      "Age of the oldest pending approval request by organisation, project and environment, in seconds",
      "oldestAgeSeconds",
    ],
  ] as const)
    new Gauge({
      name: `${METRICS_PREFIX}${name}`,
      help,
      labelNames: ["organisation", "project", "environment"],
      registers,
      async collect() {
        this.reset();
        const rows = await pendingRequests();
        if (rows === undefined) return;
        for (const r of rows)
          this.set({ organisation: r.organisation, project: r.project, environment: r.environment }, r[value]);
      },
    });
  new Gauge({
    name: `${METRICS_PREFIX}db_pool_connections`,
    help: "Database pool connections by state (in_use, idle, waiting = requests queued for one)",
    labelNames: ["state"],
    registers,
    collect() {
      const s = database.poolStats();
      this.set({ state: "in_use" }, s.total - s.idle);
      this.set({ state: "idle" }, s.idle);
      this.set({ state: "waiting" }, s.waiting);
    },
  });
}

/**
 * Shares one call's promise between the metrics of one scrape: prom-client
 * collects all metrics concurrently, so the calls overlap; the next scrape
 * queries again.
 */
function oncePerScrape<T>(load: () => Promise<T>): () => Promise<T> {
  let inFlight: Promise<T> | undefined;
  return () => {
    inFlight ??= load().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
}
