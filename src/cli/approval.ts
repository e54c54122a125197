import { toJson } from "@bufbuild/protobuf";
import { Command } from "commander";
import {
  type ExternalApprovalState,
  ExternalApproveReleaseResponseSchema,
  ExternalRejectReleaseResponseSchema,
  GetExternalApprovalStateResponseSchema,
  PolicyService,
} from "../gen/forest/v1/policy_pb.js";
import {
  ApprovalAuditService,
  ApprovalHistoryEntrySchema,
  WatchApprovalEventsResponseSchema,
} from "../gen/releasegate/v1/approval_pb.js";
import { ApprovalQueryService, ListEligibleApproversResponseSchema } from "../gen/releasegate/v1/approval_query_pb.js";
import { type ProjectFields, positiveInt, projectOption, renderTable, rpcAction } from "./context.js";

interface VoteOptions {
  project: ProjectFields;
  intent: string;
  env: string;
  comment?: string;
  forceBypass?: boolean;
}

function target(cmd: Command): Command {
  return projectOption(cmd)
    .requiredOption("-i, --intent <id>", "release intent id")
    .requiredOption("-e, --env <env>", "target environment");
}

const stateRows = (s: ExternalApprovalState | undefined) => [
  ["APPROVALS", `${s?.currentApprovals ?? 0}/${s?.requiredApprovals ?? 0}`],
  [],
  ["USER", "DECISION", "KIND", "AT"],
  ...(s?.decisions ?? []).map((d) => [d.username || d.userId, d.decision, d.decisionKind, d.decidedAt]),
];

/** `approve`, `reject`, `state`: the four-eyes gate of one intent in one environment. */
export function voteCommands(): Command[] {
  const approve = target(new Command("approve").description("approve a release intent for an environment"))
    .option("-m, --comment <text>", "why (kept in the history, never logged)")
    .option("--force-bypass", "organisation admins: approve your own release (recorded as admin_override; needs -m with a reason of at least 10 characters)")
    .action(
      rpcAction(async (ctx, o: VoteOptions) => {
        const res = await ctx.client(PolicyService).externalApproveRelease({
          project: o.project,
          releaseIntentId: o.intent,
          targetEnvironment: o.env,
          comment: o.comment,
          forceBypass: o.forceBypass ?? false,
        });
        ctx.print(ExternalApproveReleaseResponseSchema, res, () => stateRows(res.state));
      }),
    );
  const reject = target(new Command("reject").description("reject a release intent for an environment"))
    .option("-m, --comment <text>", "why (kept in the history, never logged)")
    .action(
      rpcAction(async (ctx, o: VoteOptions) => {
        const res = await ctx.client(PolicyService).externalRejectRelease({
          project: o.project,
          releaseIntentId: o.intent,
          targetEnvironment: o.env,
          comment: o.comment,
        });
        ctx.print(ExternalRejectReleaseResponseSchema, res, () => stateRows(res.state));
      }),
    );
  const state = target(new Command("state").description("current approvals of a release intent")).action(
    rpcAction(async (ctx, o: VoteOptions) => {
      const res = await ctx.client(PolicyService).getExternalApprovalState({
        project: o.project,
        releaseIntentId: o.intent,
        targetEnvironment: o.env,
      });
      ctx.print(GetExternalApprovalStateResponseSchema, res, () => stateRows(res.state));
    }),
  );
  return [approve, reject, state];
}

/** `approvers`: who may still approve a release intent, rule by rule. */
export function approversCommand(): Command {
  return target(new Command("approvers").description("each approval rule's count, who approved and who may still approve")).action(
    rpcAction(async (ctx, o: VoteOptions) => {
      const res = await ctx.client(ApprovalQueryService).listEligibleApprovers({
        project: o.project,
        releaseIntentId: o.intent,
        targetEnvironment: o.env,
      });
      ctx.print(ListEligibleApproversResponseSchema, res, () => [
        ["RULE", "APPROVALS", "APPROVED BY", "MAY STILL APPROVE"],
        ...res.rules.map((r) => [
          r.rule,
          `${r.currentApprovals}/${r.requiredApprovals}`,
          r.approvedBy.join(", ") || "-",
          [...r.mayStillApprove, ...(r.openEnded ? ["(others via identity provider or role)"] : [])].join(", ") || "-",
        ]),
      ]);
    }),
  );
}

/** `history`: every vote ever cast (append-only), oldest first, all pages. */
export function historyCommand(): Command {
  return projectOption(new Command("history").description("approval history (every vote, oldest first)"))
    .option("-i, --intent <id>", "only this release intent")
    .option("-e, --env <env>", "only this target environment")
    .option("--page-size <n>", "entries per request", positiveInt, 100)
    .action(
      rpcAction(async (ctx, o: { project: ProjectFields; intent?: string; env?: string; pageSize: number }) => {
        const client = ctx.client(ApprovalAuditService);
        let pageToken = "";
        const rows = [["SEQ", "INTENT", "ENV", "USER", "DECISION", "PREVIOUS", "KIND", "AT"]];
        do {
          const res = await client.listApprovalHistory({
            project: o.project,
            releaseIntentId: o.intent ?? "",
            targetEnvironment: o.env ?? "",
            pageSize: o.pageSize,
            pageToken,
          });
          if (ctx.output === "json")
            for (const e of res.entries)
              process.stdout.write(`${JSON.stringify(toJson(ApprovalHistoryEntrySchema, e))}\n`);
          else
            for (const e of res.entries)
              rows.push([
                String(e.sequence),
                e.releaseIntentId,
                e.targetEnvironment,
                e.username || e.userId,
                e.decision,
                e.previousDecision,
                e.decisionKind,
                e.decidedAt,
              ]);
          pageToken = res.nextPageToken;
        } while (pageToken !== "");
        if (ctx.output === "table") process.stdout.write(renderTable(rows));
      }),
    );
}

/** `watch`: prints approval decisions as they commit, until interrupted. */
export function watchCommand(): Command {
  return projectOption(new Command("watch").description("stream approval decisions as they happen (Ctrl-C to stop)"))
    .option("-e, --env <env>", "only this target environment")
    .option("--resume-after <event-id>", "first replay what was committed after this event (the last event_id you got)")
    .action(
      rpcAction(async (ctx, o: { project: ProjectFields; env?: string; resumeAfter?: string }) => {
        const abort = new AbortController();
        process.once("SIGINT", () => abort.abort());
        process.once("SIGTERM", () => abort.abort());
        try {
          for await (const res of ctx
            .client(ApprovalAuditService)
            .watchApprovalEvents(
              { project: o.project, targetEnvironment: o.env ?? "", resumeAfterEventId: o.resumeAfter ?? "" },
              // A stream runs until Ctrl-C: no --timeout deadline (0 turns it off).
              { signal: abort.signal, timeoutMs: 0 },
            )) {
            if (ctx.output === "json") {
              process.stdout.write(`${JSON.stringify(toJson(WatchApprovalEventsResponseSchema, res))}\n`);
              continue;
            }
            const e = res.event;
            if (res.subscribed) process.stderr.write("watching for approval decisions...\n");
            if (e !== undefined)
              process.stdout.write(
                `${e.decidedAt}  ${e.project?.organisation}/${e.project?.project}  ${e.targetEnvironment}  ${e.releaseIntentId}  ${e.voterUsername || e.voterUserId} ${e.decision} (${e.decisionKind})  ${e.currentApprovals}/${e.requiredApprovals}${e.passed ? "  PASSED" : ""}\n`,
              );
          }
        } catch (err) {
          if (!abort.signal.aborted) throw err;
        }
      }),
    );
}
