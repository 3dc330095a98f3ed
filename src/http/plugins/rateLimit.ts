import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Config } from "../../config/schema.js";
import { RateLimitedError } from "../../core/errors.js";
import { MemoryWindowCounterStore, TokenBudget, type WindowCounterStore } from "../../core/tokenBudget.js";
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
    /** ioredis client for request counters, shared across instances. */
    redis?: unknown;
}

/**
 * Requests per minute through @fastify/rate-limit, tokens per minute through TokenBudget.
 * Registered after auth so limits follow the key, not the address.
 */
export async function registerRateLimit(app: FastifyInstance, options: RateLimitOptions) {
    const { config, metrics } = options;
    if (!config.enabled) return;
    await app.register(rateLimit, {
        global: true,
        max: config.requestsPerMinute,
        timeWindow: 60_000,
        hook: "onRequest",
        enableDraftSpec: true,
        keyGenerator: callerKey,
        ...(options.redis ? { redis: options.redis as never, skipOnError: true } : {}),
        errorResponseBuilder: (_request, context) => {
            metrics.rateLimited.inc({ kind: "requests" });
            const seconds = Math.max(1, Math.ceil(context.ttl / 1000));
            const err = new RateLimitedError(`rate limit of ${context.max} requests per minute exceeded; retry in ${seconds} s`, { retryAfterSeconds: seconds });
            return Object.assign(err, { statusCode: 429 });
        },
    });

    const budget = new TokenBudget(options.tokenStore ?? new MemoryWindowCounterStore(), config.tokensPerMinute);
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
