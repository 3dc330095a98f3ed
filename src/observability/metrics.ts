import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Every Prometheus series the server exports, on a registry of its own so that several
 * app instances (tests) never collide in prom-client's global registry.
 */
export class Metrics {
    readonly registry = new Registry();

    readonly httpRequests = new Counter({
        name: "embedding_http_requests_total",
        help: "HTTP requests by route, method and status code",
        labelNames: ["route", "method", "status"] as const,
        registers: [this.registry],
    });
    readonly httpDuration = new Histogram({
        name: "embedding_http_request_duration_seconds",
        help: "HTTP request latency by route, method and status code",
        labelNames: ["route", "method", "status"] as const,
        buckets: LATENCY_BUCKETS,
        registers: [this.registry],
    });
    readonly errors = new Counter({
        name: "embedding_errors_total",
        help: "Error responses by stable error code",
        labelNames: ["code"] as const,
        registers: [this.registry],
    });
    readonly inputs = new Counter({
        name: "embedding_inputs_total",
        help: "Inputs embedded, by model",
        labelNames: ["model"] as const,
        registers: [this.registry],
    });
    readonly tokens = new Counter({
        name: "embedding_tokens_total",
        help: "Input tokens embedded, by model",
        labelNames: ["model"] as const,
        registers: [this.registry],
    });
    readonly truncated = new Counter({
        name: "embedding_truncated_inputs_total",
        help: "Inputs cut to the model's context because truncation was on",
        labelNames: ["model"] as const,
        registers: [this.registry],
    });
    readonly queueDepth = new Gauge({
        name: "embedding_queue_depth",
        help: "Sequences waiting for a batch, by model",
        labelNames: ["model"] as const,
        registers: [this.registry],
    });
    readonly queueTokens = new Gauge({
        name: "embedding_queue_tokens",
        help: "Tokens waiting for a batch, by model",
        labelNames: ["model"] as const,
        registers: [this.registry],
    });
    readonly batchSequences = new Histogram({
        name: "embedding_batch_sequences",
        help: "Sequences per engine call",
        labelNames: ["model"] as const,
        buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
        registers: [this.registry],
    });
    readonly batchTokens = new Histogram({
        name: "embedding_batch_tokens",
        help: "Tokens per engine call",
        labelNames: ["model"] as const,
        buckets: [16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384],
        registers: [this.registry],
    });
    readonly tokenizeDuration = new Histogram({
        name: "embedding_tokenization_duration_seconds",
        help: "Time to tokenize one request's inputs",
        labelNames: ["model"] as const,
        buckets: LATENCY_BUCKETS,
        registers: [this.registry],
    });
    readonly queueDuration = new Histogram({
        name: "embedding_queue_duration_seconds",
        help: "Time a sequence waited in the queue before its batch started",
        labelNames: ["model"] as const,
        buckets: LATENCY_BUCKETS,
        registers: [this.registry],
    });
    readonly inferenceDuration = new Histogram({
        name: "embedding_inference_duration_seconds",
        help: "Engine time per batch",
        labelNames: ["model"] as const,
        buckets: LATENCY_BUCKETS,
        registers: [this.registry],
    });
    readonly modelLoadSeconds = new Gauge({
        name: "embedding_model_load_seconds",
        help: "How long the model took to load",
        labelNames: ["model"] as const,
        registers: [this.registry],
    });
    readonly modelState = new Gauge({
        name: "embedding_model_state",
        help: "1 for the model's current state (loading, ready, draining, failed)",
        labelNames: ["model", "state"] as const,
        registers: [this.registry],
    });
    readonly rateLimited = new Counter({
        name: "embedding_rate_limited_total",
        help: "Requests refused by the rate limiter, by limit kind",
        labelNames: ["kind"] as const,
        registers: [this.registry],
    });
    readonly rateLimitStoreErrors = new Counter({
        name: "embedding_rate_limit_store_errors_total",
        help: "Rate-limit counter updates that failed (Redis down or slow); the request was let through",
        labelNames: ["kind"] as const,
        registers: [this.registry],
    });
    readonly cacheHits = new Counter({
        name: "embedding_cache_hits_total",
        help: "Inputs served from the embedding cache, by layer (memory, redis)",
        labelNames: ["layer"] as const,
        registers: [this.registry],
    });
    readonly cacheMisses = new Counter({
        name: "embedding_cache_misses_total",
        help: "Cache lookups that found nothing, by layer (memory, redis)",
        labelNames: ["layer"] as const,
        registers: [this.registry],
    });
    readonly cacheEvictions = new Counter({
        name: "embedding_cache_evictions_total",
        help: "Vectors evicted to stay within the cache's size, by layer",
        labelNames: ["layer"] as const,
        registers: [this.registry],
    });
    readonly cacheErrors = new Counter({
        name: "embedding_cache_errors_total",
        help: "Cache operations that failed or timed out, or were skipped while the layer was unavailable; the vector was computed instead",
        labelNames: ["layer"] as const,
        registers: [this.registry],
    });
    readonly cacheCoalesced = new Counter({
        name: "embedding_cache_coalesced_total",
        help: "Inputs that shared the computation of an identical input in the same request or in flight",
        registers: [this.registry],
    });
    readonly cacheMemoryBytes = new Gauge({
        name: "embedding_cache_memory_bytes",
        help: "Bytes held by the in-process embedding cache",
        registers: [this.registry],
    });
    readonly cacheMemoryEntries = new Gauge({
        name: "embedding_cache_memory_entries",
        help: "Vectors held by the in-process embedding cache",
        registers: [this.registry],
    });

    constructor() {
        // Process memory, CPU, GC and event-loop lag.
        collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
    }

    render(): Promise<string> {
        return this.registry.metrics();
    }

    get contentType(): string {
        return this.registry.contentType;
    }
}
