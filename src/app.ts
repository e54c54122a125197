import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { sql } from "kysely";
import { AdminServer } from "./admin/admin-server.js";
import { createTokenVerifier, type TokenVerifier } from "./auth/token-verifier.js";
import { cacheVerifiedTokens } from "./auth/verified-token-cache.js";
import { type Clock, systemClock } from "./clock.js";
import type { Config } from "./config.js";
import { listGrantsOfUser } from "./db/approver.repository.js";
import { type Database, openDatabase } from "./db/database.js";
import { loadProjectRules } from "./db/environment.repository.js";
import { migrateDatabase } from "./db/migrate.js";
import { PolicyService } from "./gen/forest/v1/policy_pb.js";
import { Health } from "./gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "./gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "./gen/grpc/reflection/v1alpha/reflection_pb.js";
import { ApprovalAuditService } from "./gen/releasegate/v1/approval_pb.js";
import { ApprovalQueryService } from "./gen/releasegate/v1/approval_query_pb.js";
import { ApprovalRequestService } from "./gen/releasegate/v1/approval_request_pb.js";
import { ApproverService } from "./gen/releasegate/v1/approver_pb.js";
import { BreakGlassService } from "./gen/releasegate/v1/break_glass_pb.js";
import { EnvironmentService } from "./gen/releasegate/v1/environment_pb.js";
import { ReleaseService } from "./gen/releasegate/v1/release_pb.js";
import { ServerHealth } from "./health/health.js";
import { createHealthHandlers } from "./health/health-service.js";
import type { Logger } from "./logger.js";
import { createMetrics, type Metrics, registerDatabaseMetrics } from "./metrics.js";
import { createPolicyCache, invalidateOnPolicyChange, type PolicyCache } from "./policy/policy-cache.js";
import { createDescriptorIndex } from "./reflection/descriptor-index.js";
import { createReflectionHandlers, createReflectionV1AlphaHandlers } from "./reflection/reflection-service.js";
import { createExpireDueRequests } from "./requests/expire-due-requests.js";
import { RequestReaper } from "./requests/request-reaper.js";
import { createApprovalAuditHandlers, DEFAULT_REPLAY_OVERLAP_MS } from "./rpc/approval-audit-service.js";
import { createApprovalQueryHandlers } from "./rpc/approval-query-service.js";
import { createApprovalRequestHandlers } from "./rpc/approval-request-service.js";
import { createApprovalHandlers } from "./rpc/approval-service.js";
import { createApproverHandlers } from "./rpc/approver-service.js";
import { createBreakGlassHandlers } from "./rpc/break-glass-service.js";
import { createEnvironmentHandlers } from "./rpc/environment-service.js";
import { authInterceptor, errorMappingInterceptor } from "./rpc/interceptors.js";
import { concurrencyLimitInterceptor, withDefaultDeadline } from "./rpc/limits.js";
import { observabilityInterceptor } from "./rpc/observability.js";
import { createPendingApprovalsPlaceholder } from "./rpc/pending-approvals-unimplemented.js";
import { createPolicyHandlers } from "./rpc/policy-service.js";
import { createReleaseHandlers } from "./rpc/release-service.js";
import { Listener } from "./server/listener.js";
import { createNodeHandler } from "./server/node-handler.js";
import { ApprovalEventHub } from "./signal/event-hub.js";
import { NatsPublisher } from "./signal/nats-publisher.js";
import { OutboxRelay, type OutboxRelayOptions } from "./signal/outbox-relay.js";

export interface AppOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Use this database instead of opening one from config (tests). */
  readonly database?: Database;
  /** Metrics hooks for the outbox relay. */
  readonly relayHooks?: Pick<OutboxRelayOptions, "onPublished" | "onPublishError">;
}

/** What the RPC handler is built from (started in App.start). */
interface ServingParts {
  readonly database: Database;
  readonly verifier: TokenVerifier;
  readonly policyCache: PolicyCache;
  readonly hub: ApprovalEventHub;
  readonly relay: OutboxRelay;
  readonly health: ServerHealth;
}

/** The RPC port's request handler (connect-node, both HTTP versions). */
type RpcHandler = ReturnType<typeof createNodeHandler>;

/** The services this server answers, as health, reflection and the default deadline know them. */
const SERVED: readonly DescService[] = [
  PolicyService,
  ReleaseService,
  ApprovalAuditService,
  BreakGlassService,
  ApproverService,
  EnvironmentService,
  ApprovalQueryService,
  ApprovalRequestService,
  Health,
  ServerReflection,
  ServerReflectionV1Alpha,
];

/** Most statements one vote's transaction runs (the locked path: begin, lock, read, write, commit). */
const VOTE_STATEMENTS_MAX = 5;

/** Smallest response message compressed for a client that accepts gzip or brotli (connect's default: 1 KiB). */
export const RESPONSE_COMPRESS_MIN_BYTES = 16 * 1024;

/** A running releasegate server: start() binds, stop() drains and closes. */
export class App {
  readonly #options: AppOptions;
  readonly #clock: Clock;
  #database?: Database;
  #listener?: Listener;
  #hub?: ApprovalEventHub;
  #publisher?: NatsPublisher;
  #relay?: OutboxRelay;
  #reaper?: RequestReaper;
  /** Aborted first on stop: ends Watch streams so serving can stop promptly. */
  readonly #shutdown = new AbortController();
  #stopPolicyInvalidation?: () => Promise<void>;
  readonly #metrics = createMetrics();
  #health?: ServerHealth;
  #admin?: AdminServer;

  constructor(options: AppOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  get port(): number {
    return this.#listener?.port ?? this.#options.config.port;
  }

  get database(): Database {
    if (this.#database === undefined) throw new Error("app not started");
    return this.#database;
  }

  /** Bound port of the admin server (/healthz, /readyz, /metrics). */
  get adminPort(): number {
    return this.#admin?.port ?? this.#options.config.metricsPort;
  }

  /** This server's Prometheus metrics (a registry of its own). */
  get metrics(): Metrics {
    return this.#metrics;
  }

  /** The outbox relay (metrics: `outboxDepth()`; hooks are set through AppOptions). */
  get relay(): OutboxRelay {
    if (this.#relay === undefined) throw new Error("app not started");
    return this.#relay;
  }

  /**
   * Opens and migrates the database, then brings up what serving needs in
   * dependency order: token verification, the policy cache, the approval
   * signal path (hub, NATS publisher, relay), the RPC handler, and last the
   * ports; health turns SERVING once the database answers.
   */
  async start(): Promise<void> {
    const database = await this.#openDatabase();
    const verifier = await this.#startVerifier();
    registerDatabaseMetrics(this.#metrics, database);
    const policyCache = await this.#startPolicyCache(database);
    const { hub, relay } = await this.#startSignals(database);
    const health = this.#createHealth(database);
    await this.#serve(this.#rpcHandler({ database, verifier, policyCache, hub, relay, health }), health);
    this.#startReaper(database, relay);
    // Migrations ran and the ports are bound: SERVING once the database answers.
    await health.markReady();
    this.#logListening(database);
  }

  #logListening(database: Database): void {
    const { config, logger } = this.#options;
    logger.info(
      {
        host: config.host,
        port: this.port,
        adminPort: this.adminPort,
        tls: config.tlsCertFile !== undefined,
        database: database.kind,
      },
      `releasegate listening on ${config.host}:${this.port} (gRPC, gRPC-Web, Connect; HTTP/1.1 and HTTP/2); admin on :${this.adminPort}`,
    );
  }

  /** The configured database (or the one handed in), migrated to the latest schema. */
  async #openDatabase(): Promise<Database> {
    const { config, logger } = this.#options;
    const database =
      this.#options.database ??
      (await openDatabase({
        databaseUrl: config.databaseUrl,
        dataDir: config.dataDir,
        poolSize: config.dbPoolSize,
        autoPrepare: config.dbAutoPrepare,
        onPoolError: (err) => logger.warn({ err: err.message }, "database client error"),
        statementTimeoutMs: config.rpcTimeoutMs,
      }));
    this.#database = database;
    const applied = await migrateDatabase(database);
    logger.info({ database: database.description, applied }, "database ready");
    return database;
  }

  /**
   * Evaluations and votes read policies from a per-project cache that every
   * replica invalidates on the policies trigger's NOTIFY (and this one at once).
   */
  async #startPolicyCache(database: Database): Promise<PolicyCache> {
    const policyCache = createPolicyCache({ load: (project) => loadProjectRules(database.db, project) });
    this.#stopPolicyInvalidation = await invalidateOnPolicyChange(database, policyCache);
    return policyCache;
  }

  /** gRPC health and /readyz: SERVING while the database answers and the server is not draining. */
  #createHealth(database: Database): ServerHealth {
    this.#health = new ServerHealth({
      services: SERVED.map((s) => s.typeName),
      ping: async () => {
        await sql`select 1`.execute(database.db);
      },
    });
    return this.#health;
  }

  async #startVerifier(): Promise<TokenVerifier> {
    const { config, logger } = this.#options;
    // Pipelines call with one token again and again: verify its signature once a minute.
    const verifier = cacheVerifiedTokens(await createTokenVerifier(config.jwt, config.dataDir));
    if (verifier.mode === "local")
      logger.warn(
        { dataDir: config.dataDir },
        "no JWT key configured: local mode, tokens signed with the secret in DATA_DIR (mint one with `npm run token`)",
      );
    return verifier;
  }

  /**
   * The approval signal path: votes write the outbox; the hub (outbox
   * NOTIFY) feeds Watch streams and wakes the relay, which publishes to NATS
   * (when NATS_URL is set; else events wait in the outbox).
   */
  async #startSignals(database: Database): Promise<{ hub: ApprovalEventHub; relay: OutboxRelay }> {
    const { config, logger } = this.#options;
    const metrics = this.#metrics;
    const hub = new ApprovalEventHub(database, logger, { onInterrupted: () => metrics.watchFeedInterruptions.inc() });
    this.#hub = hub;
    await hub.start();
    if (config.natsUrl !== undefined)
      this.#publisher = new NatsPublisher({
        servers: config.natsUrl,
        stream: config.natsStream,
        subjectPrefix: config.natsSubjectPrefix,
        logger,
        onReady: () => this.#relay?.wake(),
      });
    const relay = new OutboxRelay({
      database,
      publisher: this.#publisher,
      logger,
      clock: this.#clock,
      subscribeWakeups: (wake) => hub.subscribe({}, wake),
      onPublished: (row) => {
        metrics.relayPublished.inc();
        this.#options.relayHooks?.onPublished?.(row);
      },
      onPublishError: (err) => {
        metrics.relayPublishErrors.inc();
        this.#options.relayHooks?.onPublishError?.(err);
      },
    });
    this.#relay = relay;
    this.#publisher?.start();
    relay.start();
    return { hub, relay };
  }

  /** The approval-request reaper of this replica (every replica runs one; they never expire a request twice). */
  #startReaper(database: Database, relay: OutboxRelay): void {
    const { config, logger } = this.#options;
    const metrics = this.#metrics;
    this.#reaper = new RequestReaper({
      intervalMs: config.reaperIntervalMs,
      logger,
      tick: createExpireDueRequests({
        db: database.db,
        clock: this.#clock,
        subjectPrefix: config.natsSubjectPrefix,
        onOutboxCommitted: () => relay.wake(),
        onExpired: (requests) => {
          for (const r of requests)
            metrics.requestsExpired.inc({ organisation: r.organisation, project: r.project, environment: r.environment });
        },
      }),
    });
    this.#reaper.start();
  }

  /** Every service's handlers behind the interceptors, with the default deadline. */
  #rpcHandler(parts: ServingParts): RpcHandler {
    const { config, logger } = this.#options;
    const interceptors: Interceptor[] = [
      observabilityInterceptor(logger, this.#metrics),
      concurrencyLimitInterceptor(config.maxInFlight),
      errorMappingInterceptor((err, procedure) => logger.error({ err, procedure }, "internal error")),
      // Role grants are read per request, lazily, with one indexed query (role_grants_org_user).
      authInterceptor(parts.verifier, {
        loadGrants: (organisation, userId) => listGrantsOfUser(parts.database.db, organisation, userId),
        clock: this.#clock,
      }),
    ];
    return withDefaultDeadline(
      createNodeHandler(
        {
          routes: this.#routes(parts),
          interceptors,
          readMaxBytes: config.maxRequestBytes,
          // Responses are compressed (when the client accepts it) only from
          // 16 KiB: votes and evaluations answer 1–4 KiB, where gzip cost the
          // server ~7% of its CPU per vote for a few KiB saved on a
          // datacenter link; history pages and large lists still compress.
          compressMinBytes: RESPONSE_COMPRESS_MIN_BYTES,
          // Connect JSON answers show false/0/"" too: `"allPassed": false`,
          // not an absent field, for pipelines reading it with curl and jq.
          jsonOptions: { alwaysEmitImplicit: true },
        },
        (err) => logger.error({ err }, "rpc handler failed"),
      ),
      config.rpcTimeoutMs,
      SERVED,
    );
  }

  /** Each service wired to its use cases. */
  #routes(parts: ServingParts): (router: ConnectRouter) => void {
    const { config } = this.#options;
    const { database, policyCache, hub, relay, health } = parts;
    const metrics = this.#metrics;
    const deps = {
      db: database.db,
      clock: this.#clock,
      loadProject: policyCache.get,
      onPolicyChanged: policyCache.invalidate,
      subjectPrefix: config.natsSubjectPrefix,
      onOutboxCommitted: () => relay.wake(),
    };
    const approvalHandlers = createApprovalHandlers({
      db: database.db,
      clock: this.#clock,
      subjectPrefix: config.natsSubjectPrefix,
      onOutboxCommitted: () => relay.wake(),
      onVoteConflict: () => metrics.voteConflicts.inc(),
      loadProject: policyCache.get,
    });
    const reflection = createDescriptorIndex(SERVED);
    return (router: ConnectRouter) => {
      router.service(PolicyService, { ...createPolicyHandlers(deps), ...approvalHandlers });
      router.service(
        ApprovalAuditService,
        createApprovalAuditHandlers({
          db: database.db,
          hub,
          shutdown: this.#shutdown.signal,
          maxWatchStreams: config.maxWatchStreams,
          heartbeatMs: config.watchHeartbeatMs,
          // A vote's transaction is a few statements, each capped at
          // RPC_TIMEOUT_MS by statement_timeout: replay that far back, at least a minute.
          replayOverlapMs: Math.max(DEFAULT_REPLAY_OVERLAP_MS, VOTE_STATEMENTS_MAX * config.rpcTimeoutMs),
          onReplayed: (events) => metrics.watchReplayed.inc(events),
        }),
      );
      router.service(
        ReleaseService,
        createReleaseHandlers({
          ...deps,
          subjectPrefix: config.natsSubjectPrefix,
          onOutboxCommitted: () => relay.wake(),
          onSuperseded: (project, supersessions) => {
            for (const s of supersessions)
              metrics.supersessions.inc({ organisation: project.organisation, project: project.project, environment: s.environment });
          },
        }),
      );
      router.service(ApprovalQueryService, createApprovalQueryHandlers(deps));
      router.service(ApproverService, createApproverHandlers({ db: database.db, clock: this.#clock }));
      router.service(
        BreakGlassService,
        createBreakGlassHandlers({
          db: database.db,
          clock: this.#clock,
          subjectPrefix: config.natsSubjectPrefix,
          loadProject: policyCache.get,
          onOutboxCommitted: () => relay.wake(),
          onBrokenGlass: (project, environment) =>
            metrics.breakGlass.inc({ organisation: project.organisation, project: project.project, environment }),
        }),
      );
      router.service(
        EnvironmentService,
        createEnvironmentHandlers({ db: database.db, clock: this.#clock, onEnvironmentsChanged: policyCache.invalidate }),
      );
      router.service(ApprovalRequestService, {
        ...createPendingApprovalsPlaceholder(),
        ...createApprovalRequestHandlers({
          db: database.db,
          clock: this.#clock,
          subjectPrefix: config.natsSubjectPrefix,
          loadProject: policyCache.get,
          onOutboxCommitted: () => relay.wake(),
        }),
      });
      router.service(Health, createHealthHandlers(health));
      router.service(ServerReflection, createReflectionHandlers(reflection));
      router.service(ServerReflectionV1Alpha, createReflectionV1AlphaHandlers(reflection));
    };
  }

  /** Binds the RPC port (one port, every protocol) and the admin port (/healthz, /readyz, /metrics). */
  async #serve(handler: RpcHandler, health: ServerHealth): Promise<void> {
    const { config, logger } = this.#options;
    this.#listener = new Listener(
      {
        host: config.host,
        port: config.port,
        tls:
          config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined
            ? { certFile: config.tlsCertFile, keyFile: config.tlsKeyFile }
            : undefined,
      },
      handler,
    );
    await this.#listener.start();
    this.#admin = new AdminServer({
      host: config.host,
      port: config.metricsPort,
      health,
      registry: this.#metrics.registry,
      logger,
    });
    await this.#admin.start();
  }

  /**
   * Drains: health NOT_SERVING (gRPC and /readyz), stop accepting, let
   * in-flight RPCs finish for up to `graceMs`, flush the relay, close NATS,
   * the admin port and the pool.
   */
  async stop(graceMs = this.#options.config.shutdownGraceMs): Promise<void> {
    this.#health?.markDraining();
    this.#shutdown.abort();
    await this.#listener?.stop(graceMs);
    await this.#reaper?.stop();
    // Relay flushes what it can, then NATS drains, then nothing listens any more.
    await this.#relay?.stop();
    await this.#publisher?.stop();
    await this.#hub?.stop();
    await this.#stopPolicyInvalidation?.();
    await this.#admin?.stop();
    await this.#database?.destroy();
  }
}
