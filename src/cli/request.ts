import { Command } from "commander";
import {
  type ApprovalRequest,
  ApprovalRequestService,
  ApprovalRequestState,
  CancelApprovalRequestResponseSchema,
  GetApprovalRequestResponseSchema,
  RequestApprovalResponseSchema,
} from "../gen/releasegate/v1/approval_request_pb.js";
import { type ProjectFields, projectOption, rpcAction } from "./context.js";

interface RequestOptions {
  project: ProjectFields;
  intent: string;
  env: string;
}

/** "pending", "approved", …: the state as people say it. */
export function stateName(state: ApprovalRequestState): string {
  return (ApprovalRequestState[state] ?? "UNSPECIFIED").toLowerCase();
}

function requestRows(r: ApprovalRequest | undefined): string[][] {
  if (r === undefined) return [["REQUEST", "none opened yet (releasegate request opens one)"]];
  const rows: string[][] = [
    ["REQUEST", r.id],
    ["STATE", stateName(r.state)],
    ["APPROVALS", `${r.currentApprovals}/${r.requiredApprovals}`],
    ["REQUESTED", `${r.requestedAt} by ${r.requestedBy} (${r.openedBy})`],
  ];
  if (r.expiresAt !== "") rows.push(["EXPIRES", r.expiresAt]);
  for (const p of r.ruleProgress) rows.push(["RULE", `${p.rule} ${p.currentApprovals}/${p.requiredApprovals}`]);
  if (r.decidedAt !== "") rows.push(["DECIDED", `${r.decidedAt} by ${r.decidedBy}`]);
  if (r.reason !== "") rows.push(["REASON", r.reason]);
  if (r.supersededBy !== "") rows.push(["SUPERSEDED BY", r.supersededBy]);
  return rows;
}

function requestCommand(name: string, description: string): Command {
  return projectOption(new Command(name).description(description))
    .requiredOption("-i, --intent <id>", "release intent id")
    .requiredOption("-e, --env <env>", "target environment");
}

/** `request` (open the approval request of an intent and environment: a pipeline step), `requests` (show them), `cancel`. */
export function requestCommands(): Command[] {
  const open = requestCommand(
    "request",
    "ask for approval of an intent in an environment (idempotent: the pending or approved request is returned as it is)",
  ).action(
    rpcAction(async (ctx, o: RequestOptions) => {
      const res = await ctx
        .client(ApprovalRequestService)
        .requestApproval({ project: o.project, releaseIntentId: o.intent, targetEnvironment: o.env });
      ctx.print(RequestApprovalResponseSchema, res, () => [["CREATED", String(res.created)], ...requestRows(res.request)]);
    }),
  );
  const show = requestCommand("requests", "the newest approval request of an intent and environment, and the ones before it").action(
      rpcAction(async (ctx, o: RequestOptions) => {
        const res = await ctx
          .client(ApprovalRequestService)
          .getApprovalRequest({ project: o.project, releaseIntentId: o.intent, targetEnvironment: o.env });
        ctx.print(GetApprovalRequestResponseSchema, res, () => [
          ...requestRows(res.request),
          ...res.earlier.map((e) => ["EARLIER", `${e.id} ${stateName(e.state)} ${e.decidedAt} ${e.reason}`]),
        ]);
      }),
  );
  const cancel = requestCommand("cancel", "cancel the pending approval request (the intent's author, its registrant or an admin)")
    .option("-r, --reason <text>", "why (kept in the history and the event)")
    .action(
      rpcAction(async (ctx, o: RequestOptions & { reason?: string }) => {
        const res = await ctx.client(ApprovalRequestService).cancelApprovalRequest({
          project: o.project,
          releaseIntentId: o.intent,
          targetEnvironment: o.env,
          reason: o.reason ?? "",
        });
        ctx.print(CancelApprovalRequestResponseSchema, res, () => requestRows(res.request));
      }),
    );
  return [open, show, cancel];
}
