/**
 * The framework floor: connect-node serving `grpc.health.v1.Health/Check` on
 * plain node:http2 with an answer built once, and nothing of releasegate's
 * (no interceptors, protocol sniffing, database, logging or metrics). What
 * the RPC framework alone costs per call on this machine, next to which the
 * server's own ceiling (section 1) is read. Spawned by floor.ts; prints one
 * JSON "listening" line with its port, as the server does.
 */
import * as http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  Health,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "../../src/gen/grpc/health/v1/health_pb.js";

const serving = create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING });
const server = http2.createServer(connectNodeAdapter({ routes: (router) => router.service(Health, { check: () => serving }) }));
const sessions = new Set<http2.Http2Session>();
server.on("session", (session) => {
  sessions.add(session);
  session.once("close", () => sessions.delete(session));
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ msg: "releasegate listening (framework floor)", port })}\n`);
});
process.once("SIGTERM", () => {
  server.close(() => process.exit(0));
  for (const session of sessions) session.destroy();
});
