import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import { callerAt } from "../auth/access.js";
import { authorize } from "../auth/permissions.js";
import type { Clock } from "../clock.js";
import type { DB } from "../db/schema.js";
import { requireEnvironment } from "../environment/environment-name.js";
import { InvalidArgumentError } from "../errors.js";
import {
  DeploymentStatus,
  GetReleaseIntentResponseSchema,
  RecordDeploymentResponseSchema,
  RegisterReleaseIntentResponseSchema,
  type ReleaseIntent as ReleaseIntentMsg,
  ReleaseIntentSchema,
  type ReleaseService,
} from "../gen/releasegate/v1/release_pb.js";
import { NAME_FIELD_MAX, type ProjectRef, type ProjectRules } from "../policy/policy.js";
import { requireProject, requireUuid } from "../policy/validate.js";
import { createReadIntent } from "../release/read-intent.js";
import { createRecordDeployment, requireFinishedAtNotAhead } from "../release/record-deployment.js";
import { createRegisterIntent, type RegisterIntentDeps } from "../release/register-intent.js";
import type { ReleaseIntent } from "../release/release.js";
import { accessOf } from "./context.js";
import { rfc3339 } from "./convert.js";

export interface ReleaseServiceDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
  /** Reads a project's policies and declared environments (the policy cache in production). */
  readonly loadProject: (project: ProjectRef) => Promise<ProjectRules>;
  /** JetStream subject prefix of supersede events (config NATS_SUBJECT_PREFIX). */
  readonly subjectPrefix: string;
  /** Wakes the in-process relay after a registration superseded requests. */
  readonly onOutboxCommitted?: () => void;
  /** Called with what a committed registration superseded (metrics). */
  readonly onSuperseded?: RegisterIntentDeps["onSuperseded"];
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
    registeredByUserId: i.registeredByUserId,
    registeredByActorType: i.registeredByActorType,
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
  const registerIntent = createRegisterIntent(deps);
  const readIntent = createReadIntent(deps);
  const recordDeployment = createRecordDeployment(deps);
  return {
    async registerReleaseIntent(req, ctx) {
      const project = requireProject(req.project);
      const id = req.releaseIntentId === "" ? randomUUID() : requireUuid(req.releaseIntentId, "release_intent_id");
      const authorUserId = optionalLabel(req.authorUserId, "author_user_id", NAME_FIELD_MAX);
      const authorUsername = optionalLabel(req.authorUsername, "author_username", NAME_FIELD_MAX);
      const branch = optionalLabel(req.branch, "branch");
      const version = optionalLabel(req.version, "version");
      const access = accessOf(ctx);
      const at = { project: project.project };
      await authorize(access, project.organisation, "intent.register", at);
      // Registering for another author needs admin: a grant on this project counts.
      const caller = await callerAt(access, project.organisation, at);
      const { intent, created } = await registerIntent({
        caller,
        project,
        id,
        authorUserId,
        authorUsername,
        branch,
        version,
      });
      return create(RegisterReleaseIntentResponseSchema, { releaseIntent: intentToProto(intent), created });
    },

    async getReleaseIntent(req, ctx) {
      const project = requireProject(req.project);
      const id = requireUuid(req.releaseIntentId, "release_intent_id");
      await authorize(accessOf(ctx), project.organisation, "intent.read", { project: project.project });
      return create(GetReleaseIntentResponseSchema, { releaseIntent: intentToProto(await readIntent(project, id)) });
    },

    async recordDeployment(req, ctx) {
      const project = requireProject(req.project);
      const environment = requireEnvironment(req.environment, "environment");
      const intentId = requireUuid(req.releaseIntentId, "release_intent_id");
      let status: "succeeded" | "failed";
      if (req.status === DeploymentStatus.SUCCEEDED) status = "succeeded";
      else if (req.status === DeploymentStatus.FAILED) status = "failed";
      else throw new InvalidArgumentError("status", "must be DEPLOYMENT_STATUS_SUCCEEDED or DEPLOYMENT_STATUS_FAILED");
      const finishedAt =
        req.finishedAt === undefined || req.finishedAt === ""
          ? undefined
          : requireFinishedAtNotAhead(parseRfc3339(req.finishedAt, "finished_at"), deps.clock.now());
      await authorize(accessOf(ctx), project.organisation, "deployment.record", {
        project: project.project,
        environment,
      });
      const d = await recordDeployment({ project, environment, intentId, status, finishedAt });
      return create(RecordDeploymentResponseSchema, {
        deployment: {
          id: d.id,
          project: d.project,
          environment: d.environment,
          releaseIntentId: d.releaseIntentId,
          status: req.status,
          finishedAt: rfc3339(d.finishedAt),
          recordedAt: rfc3339(d.recordedAt),
        },
      });
    },
  };
}
