/**
 * Environment names as issue 11 (item 3) and the lead's spec define them,
 * restated for the reference model without reading src/environment: fold
 * ASCII A-Z to a-z and nothing else, then require
 * `^[a-z0-9][a-z0-9._-]{0,62}$`.
 */

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Folds only ASCII upper case; no trimming, no Unicode folding. */
export function fold(value: string): string {
  return value.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** The folded name, or undefined when the folded value is still not a valid name. */
export function folded(value: string): string | undefined {
  const f = fold(value);
  return NAME.test(f) ? f : undefined;
}

/** Names the model's projects gate and declare. */
export const CANONICAL = ["prod", "staging", "dev", "qa"] as const;

/** Spellings that fold onto a canonical name (so they must mean exactly it). */
export const CASE_VARIANTS = ["Prod", "PROD", "STAGING", "Dev", "qA"] as const;

/** Valid names that are not canonical: a typo, and names near prod. */
export const OTHER_VALID = ["prdo", "prod-", "prod.eu", "prod_1", "0prod"] as const;

/** Look-alikes and malformed names: every RPC must refuse them as INVALID_ARGUMENT. */
export const LOOK_ALIKES = [
  "prod ",
  " prod",
  "prod\u200b",
  "pr\u043ed", // Cyrillic о
  "\uff50\uff52\uff4f\uff44", // full-width ｐｒｏｄ
  "prod\n",
  "-prod",
  "prod/eu",
  "p".repeat(64),
] as const;
