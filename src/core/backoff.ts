// Retry delays: capped exponential backoff with jitter.

export interface BackoffOptions {
  /** Delay before the second attempt, in ms. Default 1000. */
  delayMs?: number;
  /** Upper bound of any delay, in ms. Default 300 000 (5 min). */
  maxDelayMs?: number;
  /** Spread each delay randomly over [delay/2, delay] so retries do not stampede. Default true. */
  jitter?: boolean;
}

/** A backoff policy: options, or a function of the attempt that just failed (1-based) returning ms. */
export type Backoff = BackoffOptions | ((attempt: number) => number);

/** Delay in ms before the attempt after `attempt` (1-based). @internal */
export function backoffDelay(backoff: Backoff | undefined, attempt: number, random = Math.random): number {
  if (typeof backoff === 'function') return Math.max(0, backoff(attempt));
  const base = backoff?.delayMs ?? 1000;
  const max = backoff?.maxDelayMs ?? 300_000;
  const delay = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return backoff?.jitter === false ? delay : Math.round(delay / 2 + (random() * delay) / 2);
}
