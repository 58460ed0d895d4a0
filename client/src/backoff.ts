/** How a refresh that met a network error or a 503 is retried. */
export interface RetryOptions {
  /** Tries in all, the first included (default 6). */
  maxAttempts?: number;
  /** The ceiling of the first wait, doubled for each later one (default 500 ms). */
  baseDelayMs?: number;
  /** No wait is longer than this (default 10 s). */
  maxDelayMs?: number;
}

/**
 * The wait after failed try `attempt` (1, 2, ...): a uniform pick in [c/2, c] where
 * c = min(maxDelayMs, baseDelayMs · 2^(attempt-1)). Half fixed, so waits really grow;
 * half jitter, so tabs and users that lost the server at the same moment do not all
 * come back at the same moment either.
 */
export function backoffDelay(attempt: number, options: Required<RetryOptions>, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
