/** How retries are spaced (config WEBHOOK_BACKOFF_BASE_MS, WEBHOOK_BACKOFF_MAX_MS, WEBHOOK_MAX_ATTEMPTS). */
export interface BackoffPolicy {
  /** Ceiling of the first retry's delay, in ms; doubles per failed attempt. */
  readonly baseMs: number;
  /** Largest ceiling, in ms. */
  readonly maxMs: number;
  /** Attempts before a delivery is dead (at least 1). */
  readonly maxAttempts: number;
}

/** What to do after a failed attempt. */
export type RetryDecision = { readonly dead: true } | { readonly dead: false; readonly delayMs: number };

/**
 * After the `attempts`-th failed attempt (1-based): dead when the policy's
 * attempts are used up, else retry after a delay drawn uniformly from
 * [0, min(maxMs, baseMs * 2^(attempts-1))] ("full jitter", AWS Architecture
 * Blog, "Exponential Backoff And Jitter"): receivers that came back are not
 * hit by every sender at once. `random` returns [0, 1) (Math.random in
 * production; fixed in tests).
 */
export function afterFailedAttempt(policy: BackoffPolicy, attempts: number, random: () => number): RetryDecision {
  if (attempts >= policy.maxAttempts) return { dead: true };
  // 2^30 already exceeds any sensible maxMs; cap the exponent so it stays finite.
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempts - 1, 30));
  return { dead: false, delayMs: Math.floor(random() * (ceiling + 1)) };
}
