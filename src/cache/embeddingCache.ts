import { LRUCache } from "lru-cache";
import type { Metrics } from "../observability/metrics.js";
import { hashKey } from "./cacheKey.js";
import type { RedisVectorStore } from "./redisVectorStore.js";

/** A vector as the service returned it, with what the response reports about its input. */
export interface CachedEmbedding {
    /** Post-processed (pooled, normalised, cut to dimensions). Shared: never mutate it. */
    readonly vector: Float32Array;
    /** Tokens the input used, after prompt, special tokens and truncation. */
    readonly tokens: number;
    readonly truncated: boolean;
}

/** Bookkeeping per memory entry besides the vector and the key: object headers, map slots. */
const ENTRY_OVERHEAD_BYTES = 96;

/** Raised to requests that joined a computation whose owner gave up (cancelled, refused, failed). */
export class FlightAbandonedError extends Error {
    constructor(cause: unknown) {
        super("the request computing this input gave up", { cause });
    }
}

/**
 * One input being computed by some request. Other requests with the same key wait on it instead
 * of computing it again: `tokens` settles once the owner knows the input is valid (for the
 * joiner's rate-limit charge), `result` once the vector exists.
 */
export class Flight {
    readonly tokens: Promise<number>;
    readonly result: Promise<CachedEmbedding>;
    settled = false;
    private resolveTokens!: (n: number) => void;
    private rejectTokens!: (e: unknown) => void;
    private resolveResult!: (e: CachedEmbedding) => void;
    private rejectResult!: (e: unknown) => void;

    constructor() {
        this.tokens = new Promise<number>((resolve, reject) => {
            this.resolveTokens = resolve;
            this.rejectTokens = reject;
        });
        this.result = new Promise<CachedEmbedding>((resolve, reject) => {
            this.resolveResult = resolve;
            this.rejectResult = reject;
        });
        // Nobody may be waiting; an unobserved rejection must not crash the process.
        this.tokens.catch(() => undefined);
        this.result.catch(() => undefined);
    }

    knowTokens(tokens: number) {
        this.resolveTokens(tokens);
    }

    resolve(entry: CachedEmbedding) {
        this.settled = true;
        this.resolveTokens(entry.tokens);
        this.resolveResult(entry);
    }

    reject(cause: unknown) {
        if (this.settled) return;
        this.settled = true;
        const err = new FlightAbandonedError(cause);
        this.rejectTokens(err);
        this.rejectResult(err);
    }
}

export interface EmbeddingCacheOptions {
    /** Bytes for the in-process LRU; 0 turns it off. */
    memoryBytes: number;
    /** The shared layer, when Redis is configured. */
    redis?: RedisVectorStore;
    metrics: Metrics;
}

/**
 * Two cache layers in front of the engine: an in-process LRU bounded in bytes and, optionally,
 * Redis shared by every instance; plus the map of inputs being computed right now, so identical
 * inputs in flight are computed once.
 */
export class EmbeddingCache {
    private readonly memory: LRUCache<string, CachedEmbedding> | undefined;
    readonly redis: RedisVectorStore | undefined;
    readonly inFlight = new Map<string, Flight>();
    private readonly hits;
    private readonly misses;
    private readonly metrics: Metrics;

    constructor(options: EmbeddingCacheOptions) {
        const { metrics } = options;
        this.metrics = metrics;
        this.redis = options.redis;
        this.hits = metrics.cacheHits.labels("memory");
        this.misses = metrics.cacheMisses.labels("memory");
        if (options.memoryBytes > 0) {
            const evictions = metrics.cacheEvictions.labels("memory");
            this.memory = new LRUCache<string, CachedEmbedding>({
                maxSize: options.memoryBytes,
                // Keys are the exact input with the request's parameters: counted at two bytes a character.
                sizeCalculation: (entry, key) => entry.vector.byteLength + 2 * key.length + ENTRY_OVERHEAD_BYTES,
                dispose: (_entry, _key, reason) => {
                    if (reason === "evict") evictions.inc();
                },
            });
        }
        metrics.cacheMemoryBytes.set(0);
        metrics.cacheMemoryEntries.set(0);
    }

    /** Looks a key up in memory, counting the hit or miss. */
    getMemory(key: string): CachedEmbedding | undefined {
        if (!this.memory) return undefined;
        const entry = this.memory.get(key);
        if (entry) this.hits.inc();
        else this.misses.inc();
        return entry;
    }

    /** Keeps entries in memory only (they came from Redis). */
    putMemory(entries: readonly (readonly [string, CachedEmbedding])[]): void {
        if (!this.memory || entries.length === 0) return;
        for (const [key, entry] of entries) this.memory.set(key, entry);
        this.metrics.cacheMemoryBytes.set(this.memory.calculatedSize);
        this.metrics.cacheMemoryEntries.set(this.memory.size);
    }

    /** Stores freshly computed entries in every layer (Redis under the keys' hashes). */
    put(entries: readonly (readonly [string, CachedEmbedding])[]): void {
        this.putMemory(entries);
        this.redis?.putMany(entries.map(([key, entry]) => [hashKey(key), entry] as const));
    }

    /** Forgets everything held in memory (Redis is left alone). */
    clearMemory(): void {
        this.memory?.clear();
        this.metrics.cacheMemoryBytes.set(0);
        this.metrics.cacheMemoryEntries.set(0);
    }
}
