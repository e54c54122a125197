import { toJson } from "@bufbuild/protobuf";
import { Command } from "commander";
import {
  ApprovalRequestService,
  CountPendingApprovalsResponseSchema,
  type PendingApproval,
  PendingApprovalSchema,
} from "../gen/releasegate/v1/approval_request_pb.js";
import { EXIT, positiveInt, renderTable, rpcAction } from "./context.js";

interface InboxOptions {
  org?: string;
  project?: string;
  env?: string;
  all?: boolean;
  count?: boolean;
  pageSize: number;
}

/** "3d4h", "2h5m", "7m", "42s": an age a person reads at a glance. */
export function formatAge(seconds: bigint): string {
  const s = Number(seconds);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m`;
  return `${s}s`;
}

function row(a: PendingApproval): string[] {
  const r = a.request;
  const rules = (r?.ruleProgress ?? []).map((p) => `${p.rule} ${p.currentApprovals}/${p.requiredApprovals}`).join(", ");
  return [
    formatAge(a.ageSeconds),
    r?.project?.project ?? "",
    r?.targetEnvironment ?? "",
    r?.releaseIntentId ?? "",
    r?.version || "-",
    r?.branch || "-",
    r?.authorUserId ?? "",
    r?.requestedBy ?? "",
    `${r?.currentApprovals ?? 0}/${r?.requiredApprovals ?? 0}`,
    rules || "-",
  ];
}

/** The organisation of RELEASEGATE_PROJECT (org/project), the default for --org. */
function orgFromEnv(): string | undefined {
  const v = process.env.RELEASEGATE_PROJECT;
  const slash = v?.indexOf("/") ?? -1;
  return v !== undefined && slash > 0 ? v.slice(0, slash) : undefined;
}

/** `inbox`: the pending requests you may approve, oldest first (all pages), or their number. */
export function inboxCommand(): Command {
  return new Command("inbox")
    .description("pending approval requests you may approve, oldest first (--count: how many; --all: every one, admins)")
    .option("--org <organisation>", "organisation (default: the one of RELEASEGATE_PROJECT)", orgFromEnv())
    .option("--project <project>", "only this project (a name in --org, or ORG/PROJECT)")
    .option("-e, --env <env>", "only this target environment")
    .option("--all", "organisation admins: every pending request, not only yours to approve")
    .option("--count", "print only the number (for a badge or a prompt)")
    .option("--page-size <n>", "requests per call", positiveInt, 50)
    .hook("preAction", (cmd) => {
      const o = cmd.opts<InboxOptions>();
      const slash = o.project?.indexOf("/") ?? -1;
      if (o.project !== undefined && slash > 0) {
        cmd.setOptionValue("org", o.project.slice(0, slash));
        cmd.setOptionValue("project", o.project.slice(slash + 1));
      }
      if (cmd.opts<InboxOptions>().org === undefined)
        cmd.error("error: required option '--org <organisation>' not specified (or set RELEASEGATE_PROJECT)", {
          exitCode: EXIT.usage,
        });
    })
    .action(
      rpcAction(async (ctx, o: InboxOptions) => {
        const client = ctx.client(ApprovalRequestService);
        const filter = { organisation: o.org ?? "", project: o.project ?? "", targetEnvironment: o.env ?? "", all: o.all ?? false };
        if (o.count) {
          const res = await client.countPendingApprovals(filter);
          ctx.print(CountPendingApprovalsResponseSchema, res, () => [["PENDING"], [String(res.count)]]);
          return;
        }
        const rows = [["AGE", "PROJECT", "ENV", "INTENT", "VERSION", "BRANCH", "AUTHOR", "ASKED BY", "APPROVALS", "RULES"]];
        let pageToken = "";
        do {
          const res = await client.listPendingApprovals({ ...filter, pageSize: o.pageSize, pageToken });
          if (ctx.output === "json")
            for (const a of res.approvals)
              process.stdout.write(`${JSON.stringify(toJson(PendingApprovalSchema, a, { alwaysEmitImplicit: true }))}\n`);
          else rows.push(...res.approvals.map(row));
          pageToken = res.nextPageToken;
        } while (pageToken !== "");
        if (ctx.output === "table") process.stdout.write(renderTable(rows));
      }),
    );
}
