/**
 * Fixed-window counters for "tokens per minute" limits. The store is an interface so the
 * Redis implementation (shared across instances) can replace the in-memory one.
 */
export interface WindowCounterStore {
    /** Adds `amount` to `key`'s counter in the current window; returns the new total and ms until the window resets. */
    add(key: string, amount: number, windowMs: number): Promise<{ total: number; resetMs: number }>;
}

export class MemoryWindowCounterStore implements WindowCounterStore {
    private readonly windows = new Map<string, { total: number; resetAt: number }>();
    private lastSweep = Date.now();

    async add(key: string, amount: number, windowMs: number) {
        const now = Date.now();
        // Expired windows are swept at most once per window so the map cannot grow without bound.
        if (now - this.lastSweep > windowMs) {
            for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
            this.lastSweep = now;
        }
        let w = this.windows.get(key);
        if (!w || w.resetAt <= now) {
            w = { total: 0, resetAt: now + windowMs };
            this.windows.set(key, w);
        }
        w.total += amount;
        return { total: w.total, resetMs: w.resetAt - now };
    }
}

export interface TokenBudgetDecision {
    allowed: boolean;
    limit: number;
    remaining: number;
    resetSeconds: number;
}

/** Charges input tokens to a caller; a request that would pass the limit is refused whole. */
export class TokenBudget {
    constructor(
        private readonly store: WindowCounterStore,
        private readonly tokensPerMinute: number,
    ) {}

    async charge(key: string, tokens: number): Promise<TokenBudgetDecision> {
        const { total, resetMs } = await this.store.add(`tokens:${key}`, tokens, 60_000);
        const resetSeconds = Math.max(1, Math.ceil(resetMs / 1000));
        if (total > this.tokensPerMinute) {
            // Give back what was refused, so a rejected request costs nothing.
            await this.store.add(`tokens:${key}`, -tokens, 60_000);
            return { allowed: false, limit: this.tokensPerMinute, remaining: Math.max(0, this.tokensPerMinute - (total - tokens)), resetSeconds };
        }
        return { allowed: true, limit: this.tokensPerMinute, remaining: this.tokensPerMinute - total, resetSeconds };
    }
}
