import { InvalidArgumentError, quoteInput } from "../errors.js";

/**
 * What an environment name looks like after folding: 1-63 characters of
 * lowercase ASCII letters, digits, '.', '_' and '-', starting with a letter
 * or digit. Anything a person could mistake for another name (whitespace,
 * control characters, zero-width or non-ASCII look-alikes) does not match.
 */
export const ENVIRONMENT_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

const RULE =
  "use 1-63 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit (names are case-insensitive)";

/**
 * Folds ASCII `A-Z` to `a-z` and touches nothing else: no trimming, no
 * Unicode case folding or normalisation, so a look-alike stays different
 * and fails validation instead of silently meaning another environment.
 */
export function foldEnvironment(value: string): string {
  return value.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
}

/** True when `value`, folded, is a valid environment name. */
export function isEnvironmentName(value: string): boolean {
  return ENVIRONMENT_NAME_PATTERN.test(foldEnvironment(value));
}

/**
 * The folded environment name of a required field; INVALID_ARGUMENT naming
 * `field` when it is empty (`<field>: is required`) or not a valid name.
 */
export function requireEnvironment(value: string | undefined, field: string): string {
  if (value === undefined || value === "") throw new InvalidArgumentError(field, "is required");
  const folded = foldEnvironment(value);
  if (!ENVIRONMENT_NAME_PATTERN.test(folded))
    throw new InvalidArgumentError(field, `${quoteInput(value)} is not a valid environment name: ${RULE}`);
  return folded;
}

/** Like requireEnvironment for an optional filter: `""` (or absent) means no filter and returns undefined. */
export function optionalEnvironment(value: string | undefined, field: string): string | undefined {
  if (value === undefined || value === "") return undefined;
  return requireEnvironment(value, field);
}
