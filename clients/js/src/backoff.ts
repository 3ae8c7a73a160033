// When to try a failed send again.

/** Retries of one send: on UNAVAILABLE, RESOURCE_EXHAUSTED and network failures only. */
export interface RetryPolicy {
  /** Attempts in all, the first one included (default 4; 1 turns retries off). */
  maxAttempts?: number;
  /** The backoff before the second attempt (default 250 ms); it doubles after each attempt. */
  initialDelayMs?: number;
  /** The backoff never grows beyond this (default 4 s). */
  maxDelayMs?: number;
  /** A server asking for a longer wait (RetryInfo) than this fails the call at once (default 15 s). */
  maxRetryInfoDelayMs?: number;
}

export const DEFAULT_RETRY: Required<RetryPolicy> = {
  maxAttempts: 4,
  initialDelayMs: 250,
  maxDelayMs: 4000,
  maxRetryInfoDelayMs: 15000,
};

/**
 * The wait before attempt `failed + 1`, after `failed` failed attempts: exponential backoff with jitter
 * (between half and all of `initial * 2^(failed-1)`, capped), and never less than the server's RetryInfo.
 * `undefined`: do not retry (attempts used up, or the server asks for too long a wait).
 */
export function retryDelay(
  failed: number,
  serverDelayMs: number | undefined,
  policy: RetryPolicy = {},
  random: () => number = Math.random,
): number | undefined {
  const { maxAttempts, initialDelayMs, maxDelayMs, maxRetryInfoDelayMs } = { ...DEFAULT_RETRY, ...policy };
  if (failed >= maxAttempts) return undefined;
  if (serverDelayMs !== undefined && serverDelayMs > maxRetryInfoDelayMs) return undefined;
  const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** (failed - 1));
  const backoff = ceiling / 2 + random() * (ceiling / 2);
  return Math.round(Math.max(backoff, serverDelayMs ?? 0));
}
