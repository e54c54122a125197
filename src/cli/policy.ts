import { Command, Option, InvalidArgumentError as UsageError } from "commander";
import {
  EvaluatePoliciesResponseSchema,
  ListPoliciesResponseSchema,
  type Policy,
  PolicySchema,
  PolicyService,
  PolicyType,
} from "../gen/forest/v1/policy_pb.js";
import { EXIT, type ProjectFields, positiveInt, projectOption, rpcAction } from "./context.js";

const TYPES = {
  soak: PolicyType.SOAK_TIME,
  branch: PolicyType.BRANCH_RESTRICTION,
  approval: PolicyType.EXTERNAL_APPROVAL,
  "supersede-pending": PolicyType.SUPERSEDE_PENDING,
};
type TypeName = keyof typeof TYPES;
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3_600, d: 86_400 };

/** `90`, `90s`, `30m`, `2h`, `1d` → seconds. */
export function parseDuration(value: string): bigint {
  const match = /^(\d+)([smhd]?)$/.exec(value);
  if (match === null) throw new UsageError("expected a duration like 90s, 30m, 2h or 1d");
  return BigInt(match[1]!) * BigInt(UNITS[match[2] || "s"]!);
}

interface ConfigOptions {
  type?: TypeName;
  target?: string;
  source?: string;
  duration?: bigint;
  pattern?: string;
  required?: number;
  sameBranchOnly?: boolean;
}

/** The request's `config` oneof from the command line; undefined when no config option was given. */
function configFrom(o: ConfigOptions, type: TypeName | undefined) {
  const target = o.target ?? "";
  switch (type) {
    case "soak":
      return {
        case: "soakTime" as const,
        value: { sourceEnvironment: o.source ?? "", targetEnvironment: target, durationSeconds: o.duration ?? 0n },
      };
    case "branch":
      return {
        case: "branchRestriction" as const,
        value: { targetEnvironment: target, branchPattern: o.pattern ?? "" },
      };
    case "approval":
      return {
        case: "externalApproval" as const,
        value: { targetEnvironment: target, requiredApprovals: o.required ?? 0 },
      };
    case "supersede-pending":
      return {
        case: "supersedePending" as const,
        value: { targetEnvironment: target, sameBranchOnly: o.sameBranchOnly === true },
      };
    default:
      return undefined;
  }
}

function configOptions(cmd: Command): Command {
  return cmd
    .option("--target <env>", "target environment the policy gates")
    .option("--source <env>", "soak: environment the release must have soaked in")
    .option("--duration <time>", "soak: minimum time since the deploy to --source (90s, 30m, 2h, 1d)", parseDuration)
    .option("--pattern <regex>", "branch: RE2 pattern the release branch must match, e.g. ^main$")
    .option("--required <n>", "approval: approvals required", positiveInt)
    .option("--same-branch-only", "supersede-pending: only a newer release on the same branch supersedes");
}

function describe(p: Policy): string {
  const c = p.config;
  switch (c.case) {
    case "soakTime":
      return `${c.value.sourceEnvironment} → ${c.value.targetEnvironment} for ${c.value.durationSeconds}s`;
    case "branchRestriction":
      return `${c.value.targetEnvironment}: branch ~ ${c.value.branchPattern}`;
    case "externalApproval":
      return `${c.value.targetEnvironment}: ${c.value.requiredApprovals} approval(s)`;
    case "supersedePending":
      return `${c.value.targetEnvironment}: newer release supersedes${c.value.sameBranchOnly ? " (same branch only)" : ""}`;
    default:
      return "";
  }
}
const typeName = (t: PolicyType) => PolicyType[t].toLowerCase();
const policyRows = (list: Policy[]) => [
  ["NAME", "TYPE", "ENABLED", "CONFIG", "UPDATED"],
  ...list.map((p) => [p.name, typeName(p.policyType), String(p.enabled), describe(p), p.updatedAt]),
];

export function policyCommand(): Command {
  const policy = new Command("policy").description("manage and evaluate a project's release policies");

  configOptions(
    projectOption(policy.command("create <name>").description("create a policy")).addOption(
      new Option("--type <type>", "policy type").choices(Object.keys(TYPES)).makeOptionMandatory(),
    ),
  ).action(
    rpcAction(async (ctx, name: string, o: ConfigOptions & { project: ProjectFields }) => {
      const type = o.type as TypeName;
      const { policy: created } = await ctx
        .client(PolicyService)
        .createPolicy({ project: o.project, name, policyType: TYPES[type], config: configFrom(o, type) });
      if (created !== undefined) ctx.print(PolicySchema, created, () => policyRows([created]));
    }),
  );

  projectOption(policy.command("list").description("list the project's policies")).action(
    rpcAction(async (ctx, o: { project: ProjectFields }) => {
      const res = await ctx.client(PolicyService).listPolicies({ project: o.project });
      ctx.print(ListPoliciesResponseSchema, res, () => policyRows(res.policies));
    }),
  );

  configOptions(
    projectOption(policy.command("update <name>").description("enable, disable or reconfigure a policy"))
      .option("--enable", "enable the policy")
      .option("--disable", "disable the policy")
      .addOption(
        new Option("--type <type>", "type of the new config (must match the policy's)").choices(Object.keys(TYPES)),
      ),
  ).action(
    rpcAction(
      async (
        ctx,
        name: string,
        o: ConfigOptions & { project: ProjectFields; enable?: boolean; disable?: boolean },
        cmd: Command,
      ) => {
        if (o.enable && o.disable) cmd.error("error: --enable and --disable are exclusive", { exitCode: EXIT.usage });
        const { policy: updated } = await ctx.client(PolicyService).updatePolicy({
          project: o.project,
          name,
          enabled: o.enable ? true : o.disable ? false : undefined,
          config: configFrom(o, o.type),
        });
        if (updated !== undefined) ctx.print(PolicySchema, updated, () => policyRows([updated]));
      },
    ),
  );

  projectOption(policy.command("delete <name>").description("delete a policy")).action(
    rpcAction(async (ctx, name: string, o: { project: ProjectFields }) => {
      await ctx.client(PolicyService).deletePolicy({ project: o.project, name });
      if (ctx.output === "json") process.stdout.write(`${JSON.stringify({ deleted: name })}\n`);
      else process.stdout.write(`deleted ${name}\n`);
    }),
  );

  projectOption(
    policy
      .command("evaluate")
      .description("may this release go to --env now? exit code 0 when every policy passes, 1 when one blocks")
      .requiredOption("-e, --env <env>", "target environment")
      .option("-i, --intent <id>", "release intent id (per-intent soak and approvals)")
      .option("-b, --branch <branch>", "branch being released (defaults to the intent's)"),
  ).action(
    rpcAction(async (ctx, o: { project: ProjectFields; env: string; intent?: string; branch?: string }) => {
      const res = await ctx.client(PolicyService).evaluatePolicies({
        project: o.project,
        targetEnvironment: o.env,
        releaseIntentId: o.intent,
        branch: o.branch,
      });
      ctx.print(EvaluatePoliciesResponseSchema, res, () => [
        ["POLICY", "TYPE", "RESULT", "REASON"],
        ...res.evaluations.map((e) => [e.policyName, typeName(e.policyType), e.passed ? "pass" : "BLOCK", e.reason]),
        [],
        [res.allPassed ? "all policies pass" : "blocked"],
      ]);
      return res.allPassed ? EXIT.ok : EXIT.blocked;
    }),
  );
  return policy;
}
