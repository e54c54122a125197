import { PolicyType } from "../../gen/forest/v1/policy_pb.js";
import { ApprovalRequestState } from "../../gen/releasegate/v1/approval_request_pb.js";
import { describeError } from "../api.js";
import { confirmWithReason } from "../confirm-dialog.js";
import { h, replace, when } from "../dom.js";
import { watchProject } from "../live.js";
import type { Screen, ScreenContext } from "../screen.js";
import { type EnvironmentView, loadRelease, type ProjectRef, type ReleaseView } from "./release-data.js";

const POLICY_KIND: Record<number, string> = {
  [PolicyType.SOAK_TIME]: "soak time",
  [PolicyType.BRANCH_RESTRICTION]: "branch restriction",
  [PolicyType.EXTERNAL_APPROVAL]: "approval",
  [PolicyType.SUPERSEDE_PENDING]: "supersede pending",
};

export function requestStateName(s: ApprovalRequestState): string {
  return (ApprovalRequestState[s] ?? "UNSPECIFIED").toLowerCase();
}

function verdict(passed: boolean): HTMLElement {
  return h("span", { class: passed ? "verdict pass" : "verdict block" }, passed ? "passed" : "blocked");
}

function policiesTable(env: EnvironmentView): HTMLElement {
  return h(
    "table",
    {},
    h("caption", {}, "Policies"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Policy"), h("th", { scope: "col" }, "Verdict"), h("th", { scope: "col" }, "Reason"))),
    h(
      "tbody",
      {},
      ...env.evaluations.map((e) =>
        h(
          "tr",
          {},
          h("td", {}, e.policyName, h("span", { class: "kind" }, ` (${POLICY_KIND[e.policyType] ?? "policy"})`)),
          h("td", {}, verdict(e.passed)),
          h("td", {}, e.reason),
        ),
      ),
    ),
  );
}

function votesList(env: EnvironmentView): HTMLElement {
  const decisions = env.approval?.decisions ?? [];
  if (decisions.length === 0) return h("p", { class: "muted" }, "No votes yet.");
  return h(
    "ul",
    { class: "votes", "aria-label": `Votes for ${env.environment}` },
    ...decisions.map((d) =>
      h(
        "li",
        { class: `vote ${d.decision}` },
        h("strong", {}, d.username || d.userId),
        ` ${d.decision}`,
        d.decisionKind === "" || d.decisionKind === "peer" ? "" : ` (${d.decisionKind.replace("_", " ")})`,
        h("span", { class: "muted" }, ` · ${when(d.decidedAt)}`),
        d.comment === undefined || d.comment === "" ? null : h("blockquote", { class: "comment" }, d.comment),
      ),
    ),
  );
}

function rulesList(env: EnvironmentView): HTMLElement {
  if (env.rules.length === 0)
    return h("p", { class: "muted" }, "Anyone who may vote in the organisation may approve, except the author and whoever registered the release.");
  return h(
    "ul",
    { class: "rules" },
    ...env.rules.map((r) =>
      h(
        "li",
        {},
        h("strong", {}, r.rule),
        ` ${r.currentApprovals}/${r.requiredApprovals}`,
        r.approvedBy.length === 0 ? null : h("div", {}, "Approved by: ", r.approvedBy.join(", ")),
        h(
          "div",
          { class: "may-approve" },
          "May still approve: ",
          r.mayStillApprove.length === 0 ? "nobody known" : r.mayStillApprove.join(", "),
          r.openEnded ? " (and others with the group or role in their token)" : "",
        ),
      ),
    ),
  );
}

function requestBlock(env: EnvironmentView): HTMLElement {
  if (env.request === "unavailable") return h("p", { class: "muted" }, "Approval requests are not offered by this server yet.");
  const { current, earlier } = env.request;
  if (current === undefined) return h("p", { class: "muted" }, "No approval request has been opened.");
  const line = (r: typeof current) =>
    h(
      "li",
      {},
      h("span", { class: `state ${requestStateName(r.state)}` }, requestStateName(r.state)),
      ` · requested ${when(r.requestedAt)} by ${r.requestedBy}`,
      r.decidedAt === "" ? "" : ` · ended ${when(r.decidedAt)} by ${r.decidedBy}`,
      r.reason === "" ? "" : ` · ${r.reason}`,
    );
  return h("ul", { class: "requests" }, line(current), ...earlier.map(line));
}

function environmentStatus(env: EnvironmentView): HTMLElement[] {
  const parts: HTMLElement[] = [h("p", { class: "overall" }, "Overall: ", verdict(env.allPassed)), policiesTable(env)];
  if (!env.gatedByApproval) return parts;
  if (env.approval?.breakGlass) parts.push(h("p", { class: "break-glass", role: "note" }, env.approval.breakGlass));
  parts.push(
    h("h3", {}, "Votes"),
    votesList(env),
    h("h3", {}, "Who may still approve"),
    rulesList(env),
    h("h3", {}, "Approval request"),
    requestBlock(env),
  );
  return parts;
}

function historyTable(view: ReleaseView): HTMLElement {
  if (view.history.length === 0) return h("p", { class: "muted" }, "Nothing recorded yet.");
  return h(
    "ol",
    { class: "history" },
    ...view.history.map((e) =>
      h(
        "li",
        {},
        `${when(e.decidedAt)} · ${e.targetEnvironment} · `,
        h("strong", {}, e.username || e.userId),
        ` ${e.decision} (${e.decisionKind.replace("_", " ")})`,
        e.comment === undefined || e.comment === "" ? null : h("blockquote", { class: "comment" }, e.comment),
      ),
    ),
  );
}

/** Why the signed-in person may not approve, when the intent's parties say so before the server does. */
function cannotApproveReason(ctx: ScreenContext, view: ReleaseView): string | undefined {
  const me = ctx.identity.sub;
  if (me === view.intent.authorUserId) return "You cannot approve this release: you are its author. Someone else must approve it (four eyes).";
  if (me === view.intent.registeredByUserId) return "You cannot approve this release: you registered it. Someone else must approve it (four eyes).";
  return undefined;
}

function actionsFor(ctx: ScreenContext, project: ProjectRef, intentId: string, env: string, refresh: () => Promise<void>): HTMLElement {
  const id = `comment-${env}`;
  const comment = h("textarea", { id, name: "comment", rows: 2, maxlength: 2000 });
  const result = h("p", { class: "result", role: "alert" });
  const key = { project, releaseIntentId: intentId, targetEnvironment: env };
  const run = (label: string, call: () => Promise<unknown>) => async () => {
    result.textContent = "";
    result.className = "result";
    try {
      await call();
      result.textContent = `${label}.`;
      comment.value = "";
      await refresh();
    } catch (err) {
      result.className = "result error";
      result.textContent = `Not done: ${describeError(err)}`;
    }
  };
  const optionalComment = () => (comment.value.trim() === "" ? {} : { comment: comment.value.trim() });
  const approve = h("button", { type: "button", class: "approve" }, "Approve");
  approve.addEventListener("click", run("Approved", () => ctx.api.policy.approveRelease({ ...key, ...optionalComment() })));
  const reject = h("button", { type: "button", class: "reject" }, "Reject");
  reject.addEventListener("click", run("Rejected", () => ctx.api.policy.rejectRelease({ ...key, ...optionalComment() })));
  const buttons = h("div", { class: "buttons" }, approve, reject);
  if (ctx.identity.orgRoles[project.organisation] === "admin") {
    const bypass = h("button", { type: "button", class: "danger" }, "Bypass…");
    bypass.addEventListener("click", () =>
      confirmWithReason({
        title: `Bypass the approval of ${env}`,
        explanation: "Your approval counts as an admin override, also when you are the author. It is recorded with your reason.",
        confirmLabel: "Bypass",
        onConfirm: (reason) =>
          ctx.api.policy.approveRelease({ ...key, comment: reason, forceBypass: true }).then(
            () => refresh(),
            (err: unknown) => Promise.reject(new Error(describeError(err))),
          ),
      }),
    );
    const glass = h("button", { type: "button", class: "danger" }, "Break glass…");
    glass.addEventListener("click", () =>
      confirmWithReason({
        title: `Break glass for ${env}`,
        explanation: "Every approval policy of this release and environment passes from now on, whatever the votes. Soak time and branch rules still apply. This is permanent and announced.",
        confirmLabel: "Break glass",
        onConfirm: (reason) =>
          ctx.api.breakGlass.breakGlass({ ...key, reason }).then(
            () => refresh(),
            (err: unknown) => Promise.reject(new Error(describeError(err))),
          ),
      }),
    );
    buttons.append(bypass, glass);
  }
  return h("form", { class: "actions", "aria-label": `Vote on ${env}` }, h("label", { for: id }, "Comment (optional)"), comment, buttons, result);
}

/** `#/release/<intent id>?org=…&project=…`: the release, environment by environment, with live updates. */
export const releaseScreen: Screen = async (ctx, main, params) => {
  const intentId = params.path;
  const project = { organisation: params.query.get("org") ?? "", project: params.query.get("project") ?? "" };
  if (intentId === "" || project.organisation === "" || project.project === "") {
    replace(main, h("h1", {}, "Release"), h("p", { class: "error" }, "The address needs #/release/<intent id>?org=<organisation>&project=<project>."));
    return () => {};
  }
  const title = h("h1", {}, "Release");
  const facts = h("dl", { class: "facts" });
  const sections = h("div", { class: "environments" });
  const history = h("section", { "aria-labelledby": "history-h" }, h("h2", { id: "history-h" }, "History"));
  const historyBody = h("div");
  history.append(historyBody);
  const live = h("p", { class: "live muted", "aria-live": "polite" }, "Live updates: connecting…");
  replace(main, title, facts, live, sections, history);
  const statusOf = new Map<string, HTMLElement>();
  const actionsOf = new Map<string, { form: HTMLElement; closed: HTMLElement }>();
  let first = true;
  // A final request takes no votes (the server says FAILED_PRECONDITION): a note says so.
  const votingFor = (environment: string): HTMLElement[] => {
    const form = actionsFor(ctx, project, intentId, environment, refresh);
    const closed = h("p", { class: "closed muted", role: "note" });
    closed.hidden = true;
    actionsOf.set(environment, { form, closed });
    return [form, closed];
  };
  const refresh = async () => {
    let view: ReleaseView;
    try {
      view = await loadRelease(ctx.api, project, intentId);
    } catch (err) {
      replace(sections, h("p", { class: "error", role: "alert" }, describeError(err)));
      return;
    }
    const i = view.intent;
    title.textContent = `Release ${i.version || i.releaseIntentId}`;
    replace(
      facts,
      ...[
        ["Project", `${project.organisation}/${project.project}`],
        ["Intent", i.releaseIntentId],
        ["Branch", i.branch || "—"],
        ["Author", i.authorUsername || i.authorUserId],
        ["Registered by", i.registeredByUserId],
        ["Registered", when(i.createdAt)],
      ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    );
    if (first) {
      first = false;
      const reason = cannotApproveReason(ctx, view);
      if (view.environments.length === 0) sections.append(h("p", { class: "muted" }, "No policy gates any environment of this project."));
      for (const env of view.environments) {
        const status = h("div", { class: "status" });
        statusOf.set(env.environment, status);
        const headingId = `env-${env.environment}`;
        sections.append(
          h(
            "section",
            { class: "environment", "aria-labelledby": headingId },
            h("h2", { id: headingId }, env.environment),
            status,
            env.gatedByApproval && reason !== undefined ? h("p", { class: "cannot", role: "note" }, reason) : null,
            ...(env.gatedByApproval ? votingFor(env.environment) : []),
          ),
        );
      }
    }
    for (const env of view.environments) {
      const status = statusOf.get(env.environment);
      if (status !== undefined) replace(status, ...environmentStatus(env));
      const voting = actionsOf.get(env.environment);
      const current = env.request === "unavailable" ? undefined : env.request.current;
      const final = current !== undefined && current.state !== ApprovalRequestState.PENDING;
      if (voting !== undefined) {
        // Approved: nothing left to do here. Other final states keep the form, for an admin's break-glass.
        voting.form.hidden = final && current.state === ApprovalRequestState.APPROVED;
        voting.closed.hidden = !final;
        voting.closed.textContent = !final
          ? ""
          : current.state === ApprovalRequestState.APPROVED
            ? "The approval request is approved: it takes no more votes."
            : `The approval request is ${requestStateName(current.state)}: it takes no more votes. A new one opens with \`releasegate request\`.`;
      }
    }
    replace(historyBody, historyTable(view));
  };
  await refresh();
  const stop = watchProject(ctx.api, project, {
    onEvent: (event) => {
      if (event.releaseIntentId === intentId) void refresh();
    },
    onState: (state) => {
      live.textContent = `Live updates: ${state}`;
    },
    onResync: () => void refresh(),
  });
  return stop;
};
