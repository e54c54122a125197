import type { Policy } from "../../gen/forest/v1/policy_pb.js";
import { describeError } from "../api.js";
import { h, replace } from "../dom.js";
import type { Screen } from "../screen.js";

function summary(p: Policy): string {
  const c = p.config;
  switch (c.case) {
    case "soakTime":
      return `${c.value.durationSeconds}s in ${c.value.sourceEnvironment} before ${c.value.targetEnvironment}`;
    case "branchRestriction":
      return `branches matching ${c.value.branchPattern} may reach ${c.value.targetEnvironment}`;
    case "externalApproval":
      return `${c.value.requiredApprovals} approval(s) for ${c.value.targetEnvironment}${c.value.distinctApprovers ? ", distinct approvers per rule" : ""}`;
    case "supersedePending":
      return `a newer release supersedes pending ones in ${c.value.targetEnvironment}${c.value.sameBranchOnly ? " (same branch)" : ""}`;
    default:
      return "unknown policy kind";
  }
}

/** `#/policies?org=…&project=…`: the project's policies and their rules; admins may switch them on and off. */
export const policiesScreen: Screen = async (ctx, main, params) => {
  const organisation = params.query.get("org") ?? "";
  const project = params.query.get("project") ?? "";
  const form = h(
    "form",
    { class: "inline", "aria-label": "Choose a project" },
    h("label", { for: "pol-org" }, "Organisation"),
    h("input", { id: "pol-org", name: "org", value: organisation, required: true }),
    h("label", { for: "pol-project" }, "Project"),
    h("input", { id: "pol-project", name: "project", value: project, required: true }),
    h("button", { type: "submit" }, "Show"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = `#/policies?${new URLSearchParams([...new FormData(form)].map(([k, v]) => [k, String(v)]))}`;
  });
  const list = h("div");
  replace(main, h("h1", {}, "Policies"), form, list);
  if (organisation === "" || project === "") return () => {};
  const ref = { organisation, project };
  const isAdmin = ctx.identity.orgRoles[organisation] === "admin";
  const render = async () => {
    let policies: Policy[];
    try {
      policies = (await ctx.api.policy.listPolicies({ project: ref })).policies;
    } catch (err) {
      replace(list, h("p", { class: "error", role: "alert" }, describeError(err)));
      return;
    }
    if (policies.length === 0) {
      replace(list, h("p", { class: "muted" }, `${organisation}/${project} has no policies.`));
      return;
    }
    replace(
      list,
      h(
        "ul",
        { class: "policies" },
        ...policies.map((p) => {
          const rules = p.config.case === "externalApproval" ? p.config.value.rules : [];
          const result = h("span", { class: "result", role: "alert" });
          const toggle = isAdmin ? h("button", { type: "button" }, p.enabled ? `Disable ${p.name}` : `Enable ${p.name}`) : null;
          toggle?.addEventListener("click", () => {
            ctx.api.policy.updatePolicy({ project: ref, name: p.name, enabled: !p.enabled }).then(
              () => render(),
              (err: unknown) => {
                result.textContent = describeError(err);
              },
            );
          });
          return h(
            "li",
            { class: p.enabled ? "policy" : "policy disabled" },
            h("strong", {}, p.name),
            h("span", { class: "muted" }, p.enabled ? " · enabled" : " · disabled"),
            h("div", {}, summary(p)),
            rules.length === 0
              ? null
              : h("ul", { class: "rules" }, ...rules.map((r) => h("li", {}, `${r.requiredApprovals} from ${r.group !== "" ? `group ${r.group}` : `role ${r.minRole} or above`}`))),
            toggle,
            result,
          );
        }),
      ),
    );
  };
  await render();
  return () => {};
};
