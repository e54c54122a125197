import re2 from "re2-wasm";
import { InvalidArgumentError } from "../errors.js";
import { BRANCH_NAME_MAX, BRANCH_PATTERN_MAX } from "./policy.js";

const { RE2 } = re2;

/** A compiled branch pattern; RE2 matches in time linear in the input. */
export interface BranchMatcher {
  readonly pattern: string;
  matches(branch: string): boolean;
}

// Distinct patterns are few (one per branch policy); bound the caches anyway.
const COMPILED_CACHE_MAX = 1024;
const RESULT_CACHE_MAX = 256;
const compiled = new Map<string, BranchMatcher>();

/**
 * Compiles `pattern` with RE2 (never a backtracking engine on user input).
 * Throws InvalidArgumentError naming `field` when it does not compile.
 */
export function compileBranchPattern(pattern: string, field = "branch_pattern"): BranchMatcher {
  const cached = compiled.get(pattern);
  if (cached !== undefined) return cached;
  if (pattern.length === 0) throw new InvalidArgumentError(field, "must not be empty");
  if (pattern.length > BRANCH_PATTERN_MAX)
    throw new InvalidArgumentError(field, `must be at most ${BRANCH_PATTERN_MAX} characters`);
  let re: InstanceType<typeof RE2>;
  try {
    re = new RE2(pattern, "u");
  } catch (err) {
    const detail = err instanceof Error ? err.message.replace(/^Invalid regular expression: /, "") : "";
    throw new InvalidArgumentError(field, `not a valid RE2 pattern (${detail})`, { cause: err });
  }
  // Branch names repeat across evaluations; a small memo avoids a WASM call
  // (~10 µs) per evaluation.
  const results = new Map<string, boolean>();
  const matcher: BranchMatcher = {
    pattern,
    matches(branch) {
      const hit = results.get(branch);
      if (hit !== undefined) return hit;
      re.lastIndex = 0;
      const result = re.test(branch);
      // Only real branch names are memoised: a stream of huge distinct inputs
      // must not pin megabytes per pattern.
      if (branch.length > BRANCH_NAME_MAX) return result;
      if (results.size >= RESULT_CACHE_MAX) results.clear();
      results.set(branch, result);
      return result;
    },
  };
  if (compiled.size >= COMPILED_CACHE_MAX) compiled.clear();
  compiled.set(pattern, matcher);
  return matcher;
}
