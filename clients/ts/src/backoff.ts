// Reconnect delays: exponential backoff with jitter, and the short spread-out
// delay after a draining server's close.

export interface BackoffOptions {
  /** First delay's cap in ms; default 500. */
  base?: number;
  /** Largest delay in ms; default 30000. */
  max?: number;
  /** Growth per attempt; default 2. */
  factor?: number;
  /** Source of randomness in [0, 1); default Math.random. */
  random?: () => number;
}

/**
 * Exponential backoff with jitter for reconnecting: each delay is drawn
 * between half and all of base*factor^attempt (capped at max), so that many
 * clients dropped at once do not come back at once.
 */
export class Backoff {
  base: number;
  max: number;
  factor: number;
  random: () => number;
  attempt = 0;

  constructor({ base = 500, max = 30000, factor = 2, random = Math.random }: BackoffOptions = {}) {
    this.base = base;
    this.max = max;
    this.factor = factor;
    this.random = random;
  }

  /** The delay in milliseconds before the next attempt. */
  next(): number {
    const cap = Math.min(this.max, this.base * Math.pow(this.factor, this.attempt));
    this.attempt++;
    return Math.round(cap / 2 + this.random() * (cap / 2));
  }

  reset(): void {
    this.attempt = 0;
  }
}

/**
 * The delay before reconnecting after the server said it is draining (close
 * code 4002): under a second, since another gateway is there, but spread
 * out so a draining node's clients do not all land on the next one in the
 * same instant.
 */
export function drainDelay(random: () => number = Math.random): number {
  return Math.round(50 + random() * 950);
}
