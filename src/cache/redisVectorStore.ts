import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Metrics } from "../observability/metrics.js";
import type { CachedEmbedding } from "./embeddingCache.js";
import { ThrottledLog } from "./redisClient.js";

const HEADER_BYTES = 8;
const TRUNCATED = 1;
const isLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Little-endian: u32 token count, u32 flags (bit 0: truncated), then the vector as float32. */
export function encodeEntry(entry: CachedEmbedding): Buffer {
    const out = Buffer.allocUnsafe(HEADER_BYTES + entry.vector.byteLength);
    out.writeUInt32LE(entry.tokens, 0);
    out.writeUInt32LE(entry.truncated ? TRUNCATED : 0, 4);
    const body = Buffer.from(entry.vector.buffer, entry.vector.byteOffset, entry.vector.byteLength);
    body.copy(out, HEADER_BYTES);
    if (!isLittleEndian) out.subarray(HEADER_BYTES).swap32();
    return out;
}

/** The inverse of encodeEntry; undefined for bytes that are not an entry. */
export function decodeEntry(bytes: Buffer): CachedEmbedding | undefined {
    if (bytes.length < HEADER_BYTES + 4 || (bytes.length - HEADER_BYTES) % 4 !== 0) return undefined;
    const vector = new Float32Array((bytes.length - HEADER_BYTES) / 4);
    const view = Buffer.from(vector.buffer);
    bytes.copy(view, 0, HEADER_BYTES);
    if (!isLittleEndian) view.swap32();
    return { vector, tokens: bytes.readUInt32LE(0), truncated: (bytes.readUInt32LE(4) & TRUNCATED) !== 0 };
}

export interface RedisVectorStoreOptions {
    prefix: string;
    /** 0: no expiry. */
    ttlSeconds: number;
    metrics: Metrics;
    logger: Logger;
    /** After a timeout, Redis is bypassed this long, so a slow Redis costs one timeout per interval, not one per request. */
    backoffMs?: number;
}

/**
 * The shared layer of the embedding cache: compact binary vectors in Redis. Every method resolves,
 * never rejects: a failure, a timeout or a disconnected client counts in
 * embedding_cache_errors_total{layer="redis"} and reads as a miss, so the vector is computed.
 */
export class RedisVectorStore {
    private bypassUntil = 0;
    private readonly log: ThrottledLog;
    private readonly hits;
    private readonly misses;
    private readonly errors;

    constructor(private readonly client: Redis, private readonly options: RedisVectorStoreOptions) {
        this.log = new ThrottledLog(options.logger);
        this.hits = options.metrics.cacheHits.labels("redis");
        this.misses = options.metrics.cacheMisses.labels("redis");
        this.errors = options.metrics.cacheErrors.labels("redis");
    }

    private get available(): boolean {
        return this.client.status === "ready" && Date.now() >= this.bypassUntil;
    }

    private failed(err: unknown, op: string) {
        this.errors.inc();
        const message = (err as Error).message;
        if (/timed? ?out/i.test(message)) this.bypassUntil = Date.now() + (this.options.backoffMs ?? 1000);
        this.log.warn({ op, err: message }, "redis cache unavailable; computing vectors instead");
    }

    /** Looks up many keys in one round trip. */
    async getMany(keys: readonly string[]): Promise<(CachedEmbedding | undefined)[]> {
        const none = () => keys.map(() => undefined);
        if (keys.length === 0) return [];
        if (!this.available) {
            this.errors.inc();
            return none();
        }
        try {
            const values = await this.client.mgetBuffer(...keys.map((k) => this.options.prefix + k));
            const out = values.map((v) => (v ? decodeEntry(v) : undefined));
            let found = 0;
            for (const e of out) if (e) found++;
            if (found) this.hits.inc(found);
            if (found < keys.length) this.misses.inc(keys.length - found);
            return out;
        } catch (err) {
            this.failed(err, "get");
            return none();
        }
    }

    /** Stores entries without waiting: the request that computed them does not wait for Redis. */
    putMany(entries: readonly (readonly [string, CachedEmbedding])[]): void {
        if (entries.length === 0) return;
        if (!this.available) {
            this.errors.inc();
            return;
        }
        const pipeline = this.client.pipeline();
        const ttl = this.options.ttlSeconds;
        for (const [key, entry] of entries) {
            if (ttl > 0) pipeline.set(this.options.prefix + key, encodeEntry(entry), "EX", ttl);
            else pipeline.set(this.options.prefix + key, encodeEntry(entry));
        }
        pipeline.exec().then(
            (results) => {
                const err = results?.find(([e]) => e)?.[0];
                if (err) this.failed(err, "set");
            },
            (err: unknown) => this.failed(err, "set"),
        );
    }
}
