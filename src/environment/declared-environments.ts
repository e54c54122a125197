import { FailedPreconditionError, InvalidArgumentError } from "../errors.js";
import type { EvaluationResult } from "../policy/evaluate.js";
import type { Policy, PolicyConfig, ProjectRef } from "../policy/policy.js";
import { requireEnvironment } from "./environment-name.js";

/**
 * A project's declared environments, in declaration order; undefined when the
 * project has no declaration (every valid environment name is accepted, as
 * in Forest).
 */
export type DeclaredEnvironments = readonly string[] | undefined;

/** The most environments one project may declare. */
export const PROJECT_ENVIRONMENTS_MAX = 64;

/** `policy_name` of the evaluation that reports an undeclared target environment. */
export const DECLARED_ENVIRONMENTS_CHECK = "declared-environments";

const projectName = (p: ProjectRef) => `${p.organisation}/${p.project}`;

/**
 * Shape check of SetProjectEnvironments' list: at most 64 names, each folded
 * and valid (field `environments[i]`), no two equal after folding. Returns
 * the folded names in the given order; `[]` means "remove the declaration".
 */
export function requireEnvironmentList(values: readonly string[], field = "environments"): string[] {
  if (values.length > PROJECT_ENVIRONMENTS_MAX)
    throw new InvalidArgumentError(field, `at most ${PROJECT_ENVIRONMENTS_MAX} environments, got ${values.length}`);
  const seen = new Map<string, number>();
  return values.map((value, i) => {
    const name = requireEnvironment(value, `${field}[${i}]`);
    const first = seen.get(name);
    if (first !== undefined)
      throw new InvalidArgumentError(
        `${field}[${i}]`,
        `${name} is already listed at ${field}[${first}] (names are case-insensitive); list each environment once`,
      );
    seen.set(name, i);
    return name;
  });
}

/** True when the project accepts `environment`: no declaration, or it is declared. */
export function isDeclared(declared: DeclaredEnvironments, environment: string): boolean {
  return declared === undefined || declared.includes(environment);
}

/**
 * FAILED_PRECONDITION naming `field` unless the project accepts `environment`:
 * `environment qa is not declared for acme/web; declared: dev, staging, prod`.
 */
export function requireDeclared(
  declared: DeclaredEnvironments,
  environment: string,
  field: string,
  project: ProjectRef,
): void {
  if (isDeclared(declared, environment)) return;
  throw new FailedPreconditionError(
    field,
    `environment ${environment} is not declared for ${projectName(project)}; declared: ${declared!.join(", ")}`,
  );
}

/** The environments a policy config names, with the request field each sits in. */
export function policyEnvironments(config: PolicyConfig): Array<{ field: string; environment: string }> {
  const prefix = config.kind;
  const target = { field: `${prefix}.target_environment`, environment: config.targetEnvironment };
  return config.kind === "soak_time"
    ? [{ field: `${prefix}.source_environment`, environment: config.sourceEnvironment }, target]
    : [target];
}

/** CreatePolicy/UpdatePolicy: every environment the config names must be declared (when the project declares any). */
export function requirePolicyDeclared(declared: DeclaredEnvironments, config: PolicyConfig, project: ProjectRef): void {
  for (const { field, environment } of policyEnvironments(config)) requireDeclared(declared, environment, field, project);
}

/**
 * SetProjectEnvironments: FAILED_PRECONDITION when an existing policy
 * (enabled or not) names an environment outside the new list, so that a
 * declaration can never leave a policy gating a name nobody may use. The
 * first such policy in name order is reported.
 */
export function requireNoOrphanedPolicies(policies: readonly Policy[], environments: readonly string[]): void {
  const sorted = [...policies].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const policy of sorted)
    for (const { environment } of policyEnvironments(policy.config))
      if (!environments.includes(environment))
        throw new FailedPreconditionError(
          "environments",
          `policy ${policy.name} uses environment ${environment}, which the new list does not declare; add it or change the policy first`,
        );
}

/**
 * EvaluatePolicies for a target the project has not declared: one failing
 * evaluation and nothing else (`unknown environment prdo for acme/web;
 * declared: dev, staging, prod`). Undefined when the target is accepted.
 */
export function undeclaredEnvironmentEvaluation(
  declared: DeclaredEnvironments,
  environment: string,
  project: ProjectRef,
): EvaluationResult | undefined {
  if (isDeclared(declared, environment)) return undefined;
  return {
    allPassed: false,
    evaluations: [
      {
        policyName: DECLARED_ENVIRONMENTS_CHECK,
        kind: undefined,
        passed: false,
        reason: `unknown environment ${environment} for ${projectName(project)}; declared: ${declared!.join(", ")}`,
      },
    ],
  };
}
