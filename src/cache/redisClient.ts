import { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Config } from "../config/schema.js";

/** The URL with its password replaced, for logs. */
export function redactRedisUrl(url: string): string {
    try {
        const u = new URL(url);
        if (u.password) u.password = "***";
        return u.toString();
    } catch {
        return "<invalid redis url>";
    }
}

/**
 * Logs at most one line per interval for a recurring failure, with the number of occurrences
 * it stands for, so an outage cannot flood the log.
 */
export class ThrottledLog {
    private last = 0;
    private suppressed = 0;

    constructor(private readonly logger: { warn(fields: object, message: string): void }, private readonly intervalMs = 10_000) {}

    warn(fields: Record<string, unknown>, message: string): void {
        const now = Date.now();
        if (now - this.last < this.intervalMs) {
            this.suppressed++;
            return;
        }
        this.last = now;
        const suppressed = this.suppressed;
        this.suppressed = 0;
        this.logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, message);
    }
}

/**
 * One ioredis connection for the cache and the rate limits, with every key under `redis.prefix`, set up so that Redis can never make
 * a request wait or fail: a command that does not answer within `redis.timeoutMs` is rejected,
 * commands issued while disconnected are rejected at once instead of queued (no offline queue, no
 * retries, nothing re-sent after a reconnect), and the client reconnects on its own, backing off
 * to one attempt per second. Callers treat every rejection as "Redis unavailable" and go on.
 */
export function createRedisClient(config: Config["redis"], logger: Logger): Redis {
    const url = config.url!;
    const log = new ThrottledLog(logger);
    const client = new Redis(url, {
        // Every key (cache "emb:…", rate limits "rl:…") lives under the deployment's prefix.
        keyPrefix: config.prefix,
        commandTimeout: config.timeoutMs,
        connectTimeout: Math.max(1000, config.timeoutMs * 10),
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
        retryStrategy: (times) => Math.min(100 * times, 1000),
        // A reply to a timed-out command still arrives later; ioredis discards it.
        lazyConnect: false,
    });
    let wasReady = false;
    client.on("ready", () => {
        logger.info({ redis: redactRedisUrl(url) }, wasReady ? "redis reconnected" : "redis connected");
        wasReady = true;
    });
    client.on("error", (err: Error) => log.warn({ redis: redactRedisUrl(url), err: err.message }, "redis unavailable; serving without it"));
    return client;
}
