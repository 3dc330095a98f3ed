import type { Redis } from "ioredis";

/**
 * Fixed-window counters for "per minute" limits. The store is an interface so the
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

/** INCRBY and, for a new window, PEXPIRE, atomically; returns the total and the ms left in the window. */
const WINDOW_ADD_LUA = `
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {total, ttl}
`;

type WindowAdd = (key: string, amount: number, windowMs: number) => Promise<[number, number]>;

/**
 * Counters in Redis, so every instance counts against the same window. One round trip per
 * add (a Lua script, sent once and then called by its SHA). Errors reject; callers decide
 * what a failed count means (the limits let the request through).
 */
export class RedisWindowCounterStore implements WindowCounterStore {
    private readonly windowAdd: WindowAdd;

    constructor(client: Redis, private readonly prefix: string) {
        const command = "embeddingServerWindowAdd";
        const commands = client as unknown as Record<string, WindowAdd | undefined>;
        if (!commands[command]) client.defineCommand(command, { numberOfKeys: 1, lua: WINDOW_ADD_LUA });
        this.windowAdd = commands[command]!.bind(client);
    }

    async add(key: string, amount: number, windowMs: number) {
        const [total, ttl] = await this.windowAdd(this.prefix + key, amount, windowMs);
        return { total: Number(total), resetMs: Math.max(0, Number(ttl)) };
    }
}

export interface TokenBudgetDecision {
    allowed: boolean;
    limit: number;
    remaining: number;
    resetSeconds: number;
}

/**
 * Charges input tokens to a caller; a request that would pass the limit is refused whole.
 * When the store fails (Redis down or slow) the request is allowed and `onStoreError` is told:
 * a broken counter must not turn into refused traffic.
 */
export class TokenBudget {
    constructor(
        private readonly store: WindowCounterStore,
        private readonly tokensPerMinute: number,
        private readonly onStoreError?: (err: unknown) => void,
    ) {}

    async charge(key: string, tokens: number): Promise<TokenBudgetDecision> {
        let counted: { total: number; resetMs: number };
        try {
            counted = await this.store.add(`tokens:${key}`, tokens, 60_000);
        } catch (err) {
            this.onStoreError?.(err);
            return { allowed: true, limit: this.tokensPerMinute, remaining: this.tokensPerMinute, resetSeconds: 60 };
        }
        const { total, resetMs } = counted;
        const resetSeconds = Math.max(1, Math.ceil(resetMs / 1000));
        if (total > this.tokensPerMinute) {
            // Give back what was refused, so a rejected request costs nothing.
            await this.store.add(`tokens:${key}`, -tokens, 60_000).catch((err: unknown) => this.onStoreError?.(err));
            return { allowed: false, limit: this.tokensPerMinute, remaining: Math.max(0, this.tokensPerMinute - (total - tokens)), resetSeconds };
        }
        return { allowed: true, limit: this.tokensPerMinute, remaining: this.tokensPerMinute - total, resetSeconds };
    }
}
