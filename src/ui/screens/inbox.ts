import type { PendingApproval } from "../../gen/releasegate/v1/approval_request_pb.js";
import { type Api, describeError, isUnimplemented } from "../api.js";
import { age, h, replace } from "../dom.js";
import type { Screen } from "../screen.js";

/** The pending approvals of every organisation the token names, oldest first; "unavailable" without the inbox RPC. */
export async function loadInbox(api: Api, orgs: readonly string[]): Promise<PendingApproval[] | "unavailable"> {
  try {
    const pages = await Promise.all(orgs.map((organisation) => api.requests.listPendingApprovals({ organisation, pageSize: 200 })));
    return pages.flatMap((p) => p.approvals).sort((a, b) => Number(b.ageSeconds - a.ageSeconds));
  } catch (err) {
    if (isUnimplemented(err)) return "unavailable";
    throw err;
  }
}

/** The badge: how many approvals wait for the signed-in person (undefined without the RPC). */
export async function countPending(api: Api, orgs: readonly string[]): Promise<number | undefined> {
  try {
    const counts = await Promise.all(orgs.map((organisation) => api.requests.countPendingApprovals({ organisation })));
    return counts.reduce((n, c) => n + c.count, 0);
  } catch (err) {
    if (isUnimplemented(err)) return undefined;
    throw err;
  }
}

function row(p: PendingApproval): HTMLElement {
  const r = p.request!;
  const project = r.project ?? { organisation: "", project: "" };
  const href = `#/release/${encodeURIComponent(r.releaseIntentId)}?${new URLSearchParams({ org: project.organisation, project: project.project })}`;
  return h(
    "tr",
    {},
    h("td", {}, h("a", { href }, r.version || r.releaseIntentId)),
    h("td", {}, `${project.organisation}/${project.project}`),
    h("td", {}, r.targetEnvironment),
    h("td", {}, age(Number(p.ageSeconds))),
    h("td", {}, r.authorUserId),
    h(
      "td",
      {},
      `${r.currentApprovals}/${r.requiredApprovals}`,
      ...r.ruleProgress.map((rule) => h("div", { class: "rule" }, `${rule.rule} ${rule.currentApprovals}/${rule.requiredApprovals}`)),
    ),
  );
}

/** `#/inbox`: what waits for the signed-in person's approval. */
export const inboxScreen: Screen = async (ctx, main) => {
  const orgs = Object.keys(ctx.identity.orgRoles);
  replace(main, h("h1", {}, "Inbox"), h("p", {}, "Loading…"));
  let pending: PendingApproval[] | "unavailable";
  try {
    pending = await loadInbox(ctx.api, orgs);
  } catch (err) {
    replace(main, h("h1", {}, "Inbox"), h("p", { class: "error", role: "alert" }, describeError(err)));
    return () => {};
  }
  const open = h(
    "form",
    { class: "open-release", "aria-label": "Open a release" },
    h("h2", {}, "Open a release"),
    h("label", { for: "open-org" }, "Organisation"),
    h("input", { id: "open-org", name: "org", required: true, value: orgs[0] ?? "" }),
    h("label", { for: "open-project" }, "Project"),
    h("input", { id: "open-project", name: "project", required: true }),
    h("label", { for: "open-intent" }, "Release intent id"),
    h("input", { id: "open-intent", name: "intent", required: true }),
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Open")),
  );
  open.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(open);
    const q = new URLSearchParams({ org: String(data.get("org")), project: String(data.get("project")) });
    location.hash = `#/release/${encodeURIComponent(String(data.get("intent")))}?${q}`;
  });
  const policiesLinks = h(
    "p",
    {},
    "Policies: ",
    ...orgs.map((org) => h("span", {}, h("a", { href: `#/policies?org=${encodeURIComponent(org)}&project=` }, org), " ")),
  );
  if (pending === "unavailable") {
    ctx.setBadge(undefined);
    replace(main, h("h1", {}, "Inbox"), h("p", { class: "muted" }, "This server does not offer the inbox yet. Open a release by its id below, or follow the link in a notification."), open, policiesLinks);
    return () => {};
  }
  ctx.setBadge(pending.length);
  const body =
    pending.length === 0
      ? h(
          "div",
          { class: "empty" },
          h("p", {}, "Nothing waits for your approval."),
          h("p", { class: "muted" }, "When a pipeline asks for approval of a release you may approve, it appears here. To look at a release now, open it by its id below."),
        )
      : h(
          "table",
          { class: "inbox" },
          h("caption", {}, `${pending.length} pending, oldest first`),
          h(
            "thead",
            {},
            h("tr", {}, ...["Release", "Project", "Environment", "Waiting", "Author", "Progress"].map((c) => h("th", { scope: "col" }, c))),
          ),
          h("tbody", {}, ...pending.map(row)),
        );
  replace(main, h("h1", {}, "Inbox"), body, open, policiesLinks);
  return () => {};
};
