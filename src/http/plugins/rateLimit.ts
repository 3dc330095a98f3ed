import rateLimit, { type FastifyRateLimitStore, type FastifyRateLimitStoreCtor } from "@fastify/rate-limit";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import { ThrottledLog } from "../../cache/redisClient.js";
import type { Config } from "../../config/schema.js";
import { RateLimitedError } from "../../core/errors.js";
import { MemoryWindowCounterStore, RedisWindowCounterStore, TokenBudget, type WindowCounterStore } from "../../core/tokenBudget.js";
import type { Metrics } from "../../observability/metrics.js";

declare module "fastify" {
    interface FastifyRequest {
        /** Charges the request's input tokens against the caller's per-minute budget; throws 429 when over. */
        chargeTokens?: (tokens: number) => Promise<void>;
    }
}

/** Per API key when auth is on, per client IP otherwise. */
export function callerKey(request: FastifyRequest): string {
    return request.keyId ? `key:${request.keyId}` : `ip:${request.ip}`;
}

export interface RateLimitOptions {
    config: Config["rateLimit"];
    metrics: Metrics;
    /** Shared store for token counters (Redis across instances); in-memory by default. */
    tokenStore?: WindowCounterStore;
    /** ioredis client: request and token counters live in Redis (under "rl:"), shared across instances. */
    redis?: unknown;
}

/**
 * @fastify/rate-limit's store contract over a WindowCounterStore, so request and token counters
 * share one Redis implementation and a failed count is seen (counted, logged) before the plugin's
 * skipOnError lets the request through.
 */
function requestStore(store: WindowCounterStore, onError: (err: unknown) => void, prefix = "requests:"): FastifyRateLimitStoreCtor {
    const make = (keyPrefix: string): FastifyRateLimitStore => ({
        incr(key, callback, timeWindow) {
            store.add(keyPrefix + key, 1, timeWindow).then(
                ({ total, resetMs }) => callback(null, { current: total, ttl: resetMs }),
                (err: unknown) => {
                    onError(err);
                    callback(err as Error);
                },
            );
        },
        child: (routeOptions) => make(`${keyPrefix}${routeOptions.method}${routeOptions.url}-`),
    });
    return class {
        constructor() {
            return make(prefix);
        }
    } as unknown as FastifyRateLimitStoreCtor;
}

/**
 * Requests per minute through @fastify/rate-limit, tokens per minute through TokenBudget.
 * Registered after auth so limits follow the key, not the address.
 */
export async function registerRateLimit(app: FastifyInstance, options: RateLimitOptions) {
    const { config, metrics } = options;
    if (!config.enabled) return;
    const shared = config.redis && options.redis ? new RedisWindowCounterStore(options.redis as Redis, "rl:") : undefined;
    const log = new ThrottledLog(app.log);
    const storeError = (kind: "requests" | "tokens") => (err: unknown) => {
        metrics.rateLimitStoreErrors.inc({ kind });
        log.warn({ kind, err: (err as Error).message }, "rate-limit counter unavailable; letting requests through");
    };
    await app.register(rateLimit, {
        global: true,
        max: config.requestsPerMinute,
        timeWindow: 60_000,
        hook: "onRequest",
        enableDraftSpec: true,
        keyGenerator: callerKey,
        // A counter that cannot be reached lets the request through: Redis never fails a request.
        ...(shared ? { store: requestStore(shared, storeError("requests")), skipOnError: true } : {}),
        errorResponseBuilder: (_request, context) => {
            metrics.rateLimited.inc({ kind: "requests" });
            const seconds = Math.max(1, Math.ceil(context.ttl / 1000));
            const err = new RateLimitedError(`rate limit of ${context.max} requests per minute exceeded; retry in ${seconds} s`, { retryAfterSeconds: seconds });
            return Object.assign(err, { statusCode: 429 });
        },
    });

    const budget = new TokenBudget(options.tokenStore ?? shared ?? new MemoryWindowCounterStore(), config.tokensPerMinute, storeError("tokens"));
    app.addHook("onRequest", async (request, reply) => {
        request.chargeTokens = async (tokens: number) => {
            const decision = await budget.charge(callerKey(request), tokens);
            void reply.header("x-ratelimit-tokens-limit", String(decision.limit));
            void reply.header("x-ratelimit-tokens-remaining", String(decision.remaining));
            if (!decision.allowed) {
                metrics.rateLimited.inc({ kind: "tokens" });
                void reply.header("ratelimit-limit", String(decision.limit));
                void reply.header("ratelimit-remaining", String(decision.remaining));
                void reply.header("ratelimit-reset", String(decision.resetSeconds));
                throw new RateLimitedError(
                    tokens > decision.limit
                        ? `this request has ${tokens} tokens, more than the limit of ${decision.limit} tokens per minute`
                        : `token rate limit of ${decision.limit} tokens per minute exceeded; retry in ${decision.resetSeconds} s`,
                    { retryAfterSeconds: decision.resetSeconds },
                );
            }
        };
    });
}
