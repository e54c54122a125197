import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { NotFoundError } from "../errors.js";
import { type Health, HealthCheckResponseSchema } from "../gen/grpc/health/v1/health_pb.js";
import { type ServerHealth, ServingStatus } from "./health.js";

/** A Check reuses a database ping younger than this (probes come often), in ms. */
const PROBE_REUSE_MS = 1_000;

/**
 * `grpc.health.v1.Health` over a ServerHealth. Check answers NOT_FOUND for an
 * unknown service (as the spec asks); Watch streams SERVICE_UNKNOWN for it
 * and otherwise the status now and after each change, ending once draining.
 */
export function createHealthHandlers(health: ServerHealth): ServiceImpl<typeof Health> {
  const statusOf = (service: string) => (health.knows(service) ? health.status() : ServingStatus.SERVICE_UNKNOWN);
  return {
    async check(req) {
      if (!health.knows(req.service)) throw new NotFoundError(`service: unknown service "${req.service}"`);
      // A fresh probe, so a probe right after the database went away says so.
      const status = health.draining ? ServingStatus.NOT_SERVING : await health.probe(PROBE_REUSE_MS);
      return { status };
    },
    async *watch(req, ctx: HandlerContext) {
      let changed: () => void = () => {};
      const unsubscribe = health.subscribe(() => changed());
      const onAbort = () => changed();
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      try {
        let last: ServingStatus | undefined;
        for (;;) {
          const wake = new Promise<void>((resolve) => {
            changed = resolve;
          });
          const status = statusOf(req.service);
          if (status !== last) yield create(HealthCheckResponseSchema, { status });
          last = status;
          if (health.draining || ctx.signal.aborted) return;
          await wake;
        }
      } finally {
        unsubscribe();
        ctx.signal.removeEventListener("abort", onAbort);
      }
    },
  };
}
