import type { Kysely } from "kysely";
import type { RuleDirectory } from "../approval/eligibility.js";
import { judgeRules, type RuleProgress } from "../approval/judge-rules.js";
import { loadRuleDirectory } from "../approval/load-rule-directory.js";
import { partiesOf } from "../approval/read-approval-state.js";
import { approvalPoliciesFor, gateState } from "../approval/rules.js";
import type { ApproverGroup } from "../approver/directory.js";
import type { Clock } from "../clock.js";
import { listGroups } from "../db/approver.repository.js";
import {
  listApprovalPoliciesOf,
  listPendingPage,
  listPendingPairs,
  type PendingFilter,
  type PendingPair,
  type PendingRow,
} from "../db/inbox.repository.js";
import type { DB } from "../db/schema.js";
import type { Policy } from "../policy/policy.js";
import { type InboxViewer, mayApproveAt, ruleGroupNames, viewerDirectory } from "./inbox-eligibility.js";

export interface PendingApprovalsDeps {
  readonly db: Kysely<DB>;
  readonly clock: Clock;
}

/** An authorised inbox question (the handler checked shape and who may ask). */
export interface InboxQuery {
  readonly viewer: InboxViewer;
  readonly project?: string;
  readonly environment?: string;
  /** Every pending request of the organisation (an admin's view), not only the viewer's. */
  readonly all: boolean;
}

export interface InboxPageQuery extends InboxQuery {
  readonly pageSize: number;
  /** The last request of the previous page. */
  readonly afterId?: string;
}

/** One inbox entry: the request, its age on the server's clock, and its progress. */
export interface PendingApproval {
  readonly request: PendingRow;
  readonly ageSeconds: number;
  /** The strictest approval policy's distinct approvals and threshold (as vote responses show). */
  readonly currentApprovals: number;
  readonly requiredApprovals: number;
  /** Every rule of the gate's policies, in policy name order (as ListEligibleApprovers). */
  readonly ruleProgress: readonly RuleProgress[];
}

export interface PendingApprovalsPage {
  readonly approvals: readonly PendingApproval[];
  /** True when more requests follow the last one. */
  readonly more: boolean;
}

const pairKey = (project: string, environment: string) => `${project}\u0000${environment}`;

/**
 * The inbox: which pending requests the viewer may approve. Eligibility is
 * decided in memory once per (project, environment) from one count query,
 * one policy query and one group query, never per request; the page query
 * then reads only eligible pairs, so paging is exact. Reads only, no
 * transaction: each statement sees committed data.
 */
export function createPendingApprovals(deps: PendingApprovalsDeps) {
  const { db, clock } = deps;

  function filterOf(q: InboxQuery): PendingFilter {
    return {
      organisation: q.viewer.organisation,
      ...(q.project !== undefined ? { project: q.project } : {}),
      ...(q.environment !== undefined ? { environment: q.environment } : {}),
      ...(q.all ? {} : { excludeUserId: q.viewer.userId }),
    };
  }

  /** The pairs whose requests the viewer may approve (all of them for `all`), with their counts. */
  async function eligiblePairs(q: InboxQuery, now: Date): Promise<PendingPair[]> {
    const pairs = await listPendingPairs(db, filterOf(q));
    if (q.all || pairs.length === 0) return pairs;
    const { organisation } = q.viewer;
    const policies = await listApprovalPoliciesOf(db, organisation, [...new Set(pairs.map((p) => p.project))]);
    const names = ruleGroupNames([...policies.values()].flat());
    const groups = new Map<string, ApproverGroup>(
      names.length === 0 ? [] : (await listGroups(db, organisation, names)).map((g) => [g.name, g]),
    );
    return pairs.filter((p) =>
      mayApproveAt(policies.get(p.project) ?? [], q.viewer, viewerDirectory(q.viewer, groups, p, now)),
    );
  }

  async function count(q: InboxQuery): Promise<number> {
    const pairs = await eligiblePairs(q, clock.now());
    return pairs.reduce((sum, p) => sum + p.pending, 0);
  }

  async function list(q: InboxPageQuery): Promise<PendingApprovalsPage> {
    const now = clock.now();
    const pairs = q.all ? undefined : await eligiblePairs(q, now);
    const rows = await listPendingPage(db, {
      ...filterOf(q),
      ...(pairs !== undefined ? { pairs } : {}),
      ...(q.afterId !== undefined ? { afterId: q.afterId } : {}),
      limit: q.pageSize + 1,
    });
    const page = rows.slice(0, q.pageSize);
    const approvals = await withProgress(q.viewer.organisation, page, now);
    return { approvals, more: rows.length > q.pageSize };
  }

  /** Progress of each request on the page; policies and directories read once per project / pair on the page. */
  async function withProgress(organisation: string, rows: readonly PendingRow[], now: Date): Promise<PendingApproval[]> {
    if (rows.length === 0) return [];
    const policies = await listApprovalPoliciesOf(db, organisation, [...new Set(rows.map((r) => r.project))]);
    const directories = new Map<string, Promise<RuleDirectory | undefined>>();
    const gateOf = (r: PendingRow): Policy[] => approvalPoliciesFor(policies.get(r.project) ?? [], r.environment);
    const directoryOf = (r: PendingRow) => {
      const key = pairKey(r.project, r.environment);
      let dir = directories.get(key);
      if (dir === undefined) {
        dir = loadRuleDirectory(db, { organisation, project: r.project }, r.environment, gateOf(r), now);
        directories.set(key, dir);
      }
      return dir;
    };
    return Promise.all(
      rows.map(async (r): Promise<PendingApproval> => {
        const gate = gateOf(r);
        const directory = await directoryOf(r);
        const parties = partiesOf({
          authorUserId: r.authorUserId,
          registeredByUserId: r.registeredByUserId,
          registeredByActorType: r.registeredByActorType === "service" ? "service" : "user",
        });
        const state = gateState(gate, r.votes, directory === undefined ? undefined : { directory, parties });
        const ruleProgress =
          directory === undefined
            ? []
            : gate.flatMap((p) =>
                p.config.kind === "external_approval" && (p.config.rules?.length ?? 0) > 0
                  ? [...judgeRules(p.config, r.votes, directory, parties).progress]
                  : [],
              );
        return {
          request: r,
          ageSeconds: Math.max(0, Math.floor((now.getTime() - r.requestedAt.getTime()) / 1000)),
          currentApprovals: state.strictest.currentApprovals,
          requiredApprovals: state.strictest.requiredApprovals,
          ruleProgress,
        };
      }),
    );
  }

  return { list, count };
}
