import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import { authorize, isAdmin } from "../auth/permissions.js";
import type { Clock } from "../clock.js";
import { findIntent, insertDeployment, insertIntentIfAbsent } from "../db/release.repository.js";
import type { DB } from "../db/schema.js";
import { AlreadyExistsError, InvalidArgumentError, PermissionDeniedError } from "../errors.js";
import {
  DeploymentStatus,
  GetReleaseIntentResponseSchema,
  RecordDeploymentResponseSchema,
  RegisterReleaseIntentResponseSchema,
  type ReleaseIntent as ReleaseIntentMsg,
  ReleaseIntentSchema,
  type ReleaseService,
} from "../gen/releasegate/v1/release_pb.js";
import { NAME_FIELD_MAX } from "../policy/policy.js";
import { requireName, requireProject, requireUuid } from "../policy/validate.js";
import { intentNotFound, type ReleaseIntent, sameIntentContent } from "../release/release.js";
import { callerOf } from "./context.js";
import { rfc3339 } from "./convert.js";

export interface ReleaseServiceDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
}

const LABEL_MAX = 256;

function optionalLabel(value: string, field: string, max = LABEL_MAX): string {
  if (value.length > max) throw new InvalidArgumentError(field, `must be at most ${max} characters`);
  // Postgres text cannot hold NUL; the insert would fail with SQLSTATE 22021.
  if (value.includes("\u0000")) throw new InvalidArgumentError(field, "must not contain NUL characters");
  return value;
}

function intentToProto(i: ReleaseIntent): ReleaseIntentMsg {
  return create(ReleaseIntentSchema, {
    project: i.project,
    releaseIntentId: i.id,
    authorUserId: i.authorUserId,
    authorUsername: i.authorUsername,
    branch: i.branch,
    version: i.version,
    createdAt: rfc3339(i.createdAt),
  });
}

/** A proto timestamp string that Date parses and that is really RFC 3339 shaped. */
function parseRfc3339(value: string, field: string): Date {
  const d = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(value) || Number.isNaN(d.getTime()))
    throw new InvalidArgumentError(field, "must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05Z");
  return d;
}

export function createReleaseHandlers(deps: ReleaseServiceDeps): ServiceImpl<typeof ReleaseService> {
  const { db, clock } = deps;
  return {
    async registerReleaseIntent(req, ctx) {
      const project = requireProject(req.project);
      const caller = callerOf(ctx);
      authorize(caller, project.organisation, "intent.register");
      const id = req.releaseIntentId === "" ? randomUUID() : requireUuid(req.releaseIntentId, "release_intent_id");
      // The author is who approval's four-eyes rule checks against: default to
      // the caller. Only pipelines and admins register on someone's behalf, or
      // a member could name another author and then approve their own release.
      if (
        req.authorUserId !== "" &&
        req.authorUserId !== caller.userId &&
        caller.actorType !== "service" &&
        !isAdmin(caller, project.organisation)
      )
        throw new PermissionDeniedError(
          `author_user_id: member ${caller.userId} may register release intents only as themselves (service accounts and admins may name another author)`,
        );
      const authorUserId =
        req.authorUserId === "" ? caller.userId : optionalLabel(req.authorUserId, "author_user_id", NAME_FIELD_MAX);
      const authorUsername =
        req.authorUsername !== ""
          ? optionalLabel(req.authorUsername, "author_username", NAME_FIELD_MAX)
          : authorUserId === caller.userId
            ? caller.username
            : authorUserId;
      const candidate: ReleaseIntent = {
        id,
        project,
        authorUserId,
        authorUsername,
        branch: optionalLabel(req.branch, "branch"),
        version: optionalLabel(req.version, "version"),
        createdAt: clock.now(),
      };
      const { intent, created } = await insertIntentIfAbsent(db, candidate);
      if (!created && !sameIntentContent(intent, candidate))
        throw new AlreadyExistsError(
          `release intent ${id} is already registered with different content`,
        );
      return create(RegisterReleaseIntentResponseSchema, { releaseIntent: intentToProto(intent), created });
    },

    async getReleaseIntent(req, ctx) {
      const project = requireProject(req.project);
      authorize(callerOf(ctx), project.organisation, "intent.read");
      const id = requireUuid(req.releaseIntentId, "release_intent_id");
      const intent = await findIntent(db, project, id);
      if (intent === undefined) throw intentNotFound(project, id);
      return create(GetReleaseIntentResponseSchema, { releaseIntent: intentToProto(intent) });
    },

    async recordDeployment(req, ctx) {
      const project = requireProject(req.project);
      authorize(callerOf(ctx), project.organisation, "deployment.record");
      const environment = requireName(req.environment, "environment");
      const intentId = requireUuid(req.releaseIntentId, "release_intent_id");
      let status: "succeeded" | "failed";
      if (req.status === DeploymentStatus.SUCCEEDED) status = "succeeded";
      else if (req.status === DeploymentStatus.FAILED) status = "failed";
      else throw new InvalidArgumentError("status", "must be DEPLOYMENT_STATUS_SUCCEEDED or DEPLOYMENT_STATUS_FAILED");
      const finishedAt =
        req.finishedAt === undefined || req.finishedAt === ""
          ? clock.now()
          : parseRfc3339(req.finishedAt, "finished_at");
      if (finishedAt.getTime() > clock.now().getTime() + 60_000)
        // A future finish time would let a soak pass early; allow a minute of clock skew.
        throw new InvalidArgumentError("finished_at", "must not be in the future");
      if ((await findIntent(db, project, intentId)) === undefined)
        throw intentNotFound(project, intentId);
      const d = await insertDeployment(db, { project, environment, releaseIntentId: intentId, status, finishedAt });
      return create(RecordDeploymentResponseSchema, {
        deployment: {
          id: d.id,
          project: d.project,
          environment: d.environment,
          releaseIntentId: d.releaseIntentId,
          status: req.status,
          finishedAt: rfc3339(d.finishedAt),
        },
      });
    },
  };
}
