import { QueueFullError, RequestCancelledError } from "./errors.js";

function abortReason(signal: AbortSignal): unknown {
    return signal.reason instanceof Error ? signal.reason : new RequestCancelledError("request was cancelled by the client");
}

/** The engine side the batcher drives: one call embeds many sequences. */
export interface BatchEmbedder {
    embed(sequences: readonly Uint32Array[]): Promise<Float32Array[]>;
}

export interface BatchStats {
    sequences: number;
    tokens: number;
    /** Seconds each sequence waited in the queue before its batch started. */
    queueSeconds: number[];
    inferenceSeconds: number;
}

export interface BatcherOptions {
    /** Most tokens (summed) in one engine call. */
    maxBatchTokens: number;
    /** Most sequences in one engine call. */
    maxBatchSequences: number;
    /** Tokens allowed to wait; past it submit() fails fast with QueueFullError. */
    maxQueuedTokens: number;
    /** Batches handed to the engine at once: its concurrency (copies decoding in parallel). Default 1. */
    maxInFlight?: number;
    onBatch?: (stats: BatchStats) => void;
    onError?: (err: unknown) => void;
}

interface Entry {
    tokens: Uint32Array;
    enqueuedAt: number;
    cancelled: boolean;
    resolve: (v: Float32Array) => void;
    reject: (e: unknown) => void;
}

/**
 * Dynamic batching across requests, after text-embeddings-inference's queue: every request's
 * sequences join one FIFO, and a single loop takes the next batch within a token budget and a
 * sequence cap. The head of the queue always goes first, so long inputs never starve; smaller
 * entries behind it fill the remaining room. Tokenization of new requests happens on the JS
 * thread while the engine computes off-thread, so the two overlap.
 */
export class Batcher {
    private queue: Entry[] = [];
    private queuedTokens = 0;
    private inFlight = 0;
    /** True while a setImmediate is pending to take batches. */
    private scheduled = false;
    private closed = false;
    /** Exponentially smoothed tokens per second, for Retry-After. */
    private tokensPerSecond = 0;

    constructor(private readonly embedder: BatchEmbedder, private readonly options: BatcherOptions) {}

    /** Sequences waiting for a batch. */
    get depth(): number {
        return this.queue.length;
    }

    get pendingTokens(): number {
        return this.queuedTokens;
    }

    get busy(): boolean {
        return this.inFlight > 0 || this.queue.length > 0;
    }

    /** Queues one request's sequences; resolves with their vectors in order. */
    submit(sequences: readonly Uint32Array[], signal?: AbortSignal): Promise<Float32Array[]> {
        if (this.closed) return Promise.reject(new Error("batcher is closed"));
        if (signal?.aborted) return Promise.reject(abortReason(signal));
        const tokens = sequences.reduce((n, s) => n + s.length, 0);
        // An idle queue always takes the request, so a single large request that passed the
        // per-request limits can never be refused here.
        if (this.queue.length > 0 && this.queuedTokens + tokens > this.options.maxQueuedTokens) {
            return Promise.reject(
                new QueueFullError(
                    `server is overloaded: ${this.queuedTokens} tokens already queued, budget is ${this.options.maxQueuedTokens}; retry later`,
                    { retryAfterSeconds: this.retryAfterSeconds(tokens) },
                ),
            );
        }
        const now = performance.now();
        const entries: Entry[] = [];
        const promises = sequences.map(
            (tokens) =>
                new Promise<Float32Array>((resolve, reject) => {
                    entries.push({ tokens, enqueuedAt: now, cancelled: false, resolve, reject });
                }),
        );
        this.queue.push(...entries);
        this.queuedTokens += tokens;
        if (signal) {
            const onAbort = () => {
                for (const e of entries) {
                    if (e.cancelled) continue;
                    e.cancelled = true;
                    e.reject(abortReason(signal));
                }
                this.dropCancelled();
            };
            signal.addEventListener("abort", onAbort, { once: true });
            void Promise.allSettled(promises).then(() => signal.removeEventListener("abort", onAbort));
        }
        this.schedule();
        return Promise.all(promises);
    }

    /** Stops taking work; resolves once everything queued has been computed. */
    async drain(): Promise<void> {
        this.closed = true;
        while (this.busy) await new Promise((r) => setTimeout(r, 5));
    }

    private retryAfterSeconds(extraTokens: number): number {
        if (this.tokensPerSecond <= 0) return 1;
        return Math.max(1, Math.ceil((this.queuedTokens + extraTokens) / this.tokensPerSecond));
    }

    private dropCancelled() {
        const kept: Entry[] = [];
        for (const e of this.queue) {
            if (e.cancelled) this.queuedTokens -= e.tokens.length;
            else kept.push(e);
        }
        this.queue = kept;
    }

    private schedule() {
        const limit = this.options.maxInFlight ?? 1;
        if (this.scheduled || this.queue.length === 0 || this.inFlight >= limit) return;
        this.scheduled = true;
        // setImmediate lets requests that arrived in the same tick join this batch.
        setImmediate(() => {
            this.scheduled = false;
            while (this.queue.length > 0 && this.inFlight < limit) {
                const batch = this.takeBatch();
                if (batch.length === 0) break;
                this.inFlight++;
                void this.run(batch);
            }
        });
    }

    private takeBatch(): Entry[] {
        const { maxBatchTokens, maxBatchSequences } = this.options;
        const batch: Entry[] = [];
        const rest: Entry[] = [];
        let tokens = 0;
        for (const e of this.queue) {
            if (e.cancelled) {
                this.queuedTokens -= e.tokens.length;
                continue;
            }
            const fits = batch.length === 0 || (batch.length < maxBatchSequences && tokens + e.tokens.length <= maxBatchTokens);
            if (fits) {
                batch.push(e);
                tokens += e.tokens.length;
                this.queuedTokens -= e.tokens.length;
            } else {
                rest.push(e);
            }
        }
        this.queue = rest;
        return batch;
    }

    private async run(batch: Entry[]) {
        try {
            const start = performance.now();
            const tokens = batch.reduce((n, e) => n + e.tokens.length, 0);
            try {
                const vectors = await this.embedder.embed(batch.map((e) => e.tokens));
                const seconds = (performance.now() - start) / 1000;
                const rate = tokens / Math.max(seconds, 1e-6);
                this.tokensPerSecond = this.tokensPerSecond === 0 ? rate : 0.8 * this.tokensPerSecond + 0.2 * rate;
                batch.forEach((e, i) => (e.cancelled ? undefined : e.resolve(vectors[i]!)));
                this.options.onBatch?.({
                    sequences: batch.length,
                    tokens,
                    queueSeconds: batch.map((e) => (start - e.enqueuedAt) / 1000),
                    inferenceSeconds: seconds,
                });
            } catch (err) {
                this.options.onError?.(err);
                for (const e of batch) e.reject(err);
            }
        } finally {
            this.inFlight--;
            this.schedule();
        }
    }
}
