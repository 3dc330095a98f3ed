import { CacheKeyBuilder, hashKey } from "../cache/cacheKey.js";
import { Flight, type CachedEmbedding, type EmbeddingCache } from "../cache/embeddingCache.js";
import { fileIdentityOf } from "../cache/fileIdentity.js";
import type { Config } from "../config/schema.js";
import type { ModelHandle, ModelRegistry } from "../models/registry.js";
import type { Metrics } from "../observability/metrics.js";
import { InputTooLongError, InvalidRequestError, TooManyInputsError } from "./errors.js";
import { postprocess } from "./vectors.js";

/** Half of a surrogate pair with no other half: not encodable as UTF-8 for the tokenizer. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A text, or token ids used verbatim (no special tokens are added to them). */
export type EmbedInput = string | readonly number[];

export interface EmbedRequest {
    /** Model id or alias; the default model when absent. */
    model?: string;
    inputs: readonly EmbedInput[];
    /** Picks the model's query or document prompt. */
    inputType?: "query" | "document";
    /** Picks a named prompt from the model's config. */
    promptName?: string;
    /** Cut over-long inputs instead of refusing them. Default: limits.truncate. */
    truncate?: boolean;
    /** L2-normalise the vectors. Default true. */
    normalize?: boolean;
    /** Keep only the first N dimensions (Matryoshka), renormalised when normalize is on. */
    dimensions?: number;
    /** Name of the request field holding the inputs, for error messages ("input", "texts"). */
    field?: string;
    /** Cancels queued work; a function is called only if the request has to queue (cache hits never do). */
    signal?: AbortSignal | (() => AbortSignal);
    /** Called with the request's token count before it is queued; throws to refuse (rate limits). */
    admit?: (tokens: number) => Promise<void>;
}

export interface EmbedResult {
    model: string;
    dimensions: number;
    /** Read-only: a vector may be shared with the embedding cache. */
    vectors: Float32Array[];
    /** Tokens per input, after prompts, special tokens and truncation. */
    tokenCounts: number[];
    totalTokens: number;
}

interface Tokenized {
    sequence: Uint32Array;
    truncated: boolean;
}

function sumTokens(entries: readonly CachedEmbedding[]): number {
    let n = 0;
    for (const e of entries) n += e.tokens;
    return n;
}

/**
 * The request pipeline between HTTP and the engine: limits, prompts, the embedding cache,
 * tokenization, long-input policy, queueing and post-processing. Knows nothing about HTTP.
 */
export class EmbedService {
    constructor(
        private readonly registry: ModelRegistry,
        private readonly limits: Config["limits"],
        private readonly metrics: Metrics,
        /** Serves repeated inputs without the engine; absent: every input is computed. */
        private readonly cache?: EmbeddingCache,
    ) {}

    async embed(request: EmbedRequest): Promise<EmbedResult> {
        const field = request.field ?? "input";
        const { inputs } = request;
        if (inputs.length === 0) throw new InvalidRequestError(`${field} must contain at least one input`, { param: field });
        if (inputs.length > this.limits.maxInputsPerRequest) {
            throw new TooManyInputsError(`${field} has ${inputs.length} inputs; the limit is ${this.limits.maxInputsPerRequest} per request`, {
                param: field,
            });
        }
        // Loads a lazy or idle-unloaded model first; the handle stays alive until release().
        const { handle, release } = await this.registry.use(request.model);
        try {
            return await this.embedWith(handle, request, field);
        } finally {
            release();
        }
    }

    private async embedWith(handle: ModelHandle, request: EmbedRequest, field: string): Promise<EmbedResult> {
        const engine = handle.engine!;
        const { info } = engine;
        if (request.dimensions !== undefined && (request.dimensions < 1 || request.dimensions > info.dimensions)) {
            throw new InvalidRequestError(`dimensions must be between 1 and ${info.dimensions} for model "${handle.id}"; got ${request.dimensions}`, {
                param: "dimensions",
            });
        }
        const prefix = this.promptFor(handle, request);
        const truncate = request.truncate ?? this.limits.truncate;
        const normalize = request.normalize ?? true;
        const identity = this.cache ? fileIdentityOf(engine) : undefined;
        const entries =
            identity === undefined
                ? await this.compute(handle, request, field, prefix, truncate, normalize)
                : await this.computeCached(handle, request, field, prefix, truncate, normalize, identity);

        const vectors = new Array<Float32Array>(entries.length);
        const tokenCounts = new Array<number>(entries.length);
        let totalTokens = 0;
        for (let i = 0; i < entries.length; i++) {
            const e = entries[i]!;
            vectors[i] = e.vector;
            tokenCounts[i] = e.tokens;
            totalTokens += e.tokens;
        }
        this.metrics.inputs.inc({ model: handle.id }, entries.length);
        this.metrics.tokens.inc({ model: handle.id }, totalTokens);
        return { model: handle.id, dimensions: vectors[0]!.length, vectors, tokenCounts, totalTokens };
    }

    /** Without the cache: tokenize every input, charge, queue, post-process. */
    private async compute(handle: ModelHandle, request: EmbedRequest, field: string, prefix: string, truncate: boolean, normalize: boolean): Promise<CachedEmbedding[]> {
        const { inputs } = request;
        const tokenized = await this.tokenizeAll(handle, inputs.map((_, i) => i), inputs, prefix, truncate, field);
        if (request.admit) await request.admit(tokenized.reduce((n, t) => n + t.sequence.length, 0));
        return this.run(handle, tokenized, request, normalize);
    }

    /**
     * With the cache: every input gets a key; memory, then Redis, then an identical input already
     * being computed by another request, and only what is left is tokenized and queued. A hit skips
     * tokenization and the batcher entirely. Each input's token count is kept with its vector, so
     * usage and the token budget see the same numbers whether an input hit or not.
     */
    private async computeCached(
        handle: ModelHandle,
        request: EmbedRequest,
        field: string,
        prefix: string,
        truncate: boolean,
        normalize: boolean,
        fileIdentity: string,
    ): Promise<CachedEmbedding[]> {
        const cache = this.cache!;
        const engine = handle.engine!;
        const { inputs } = request;
        const dimensions = request.dimensions ?? engine.info.dimensions;
        const keys = new CacheKeyBuilder({
            model: handle.id,
            fileIdentity,
            runtime: `${engine.backend.engine}/${engine.backend.gpu}`,
            pooling: engine.info.pooling,
            contextLength: engine.info.contextLength,
            prefix,
            truncate,
            normalize,
            dimensions,
        });

        const n = inputs.length;
        const entries = new Array<CachedEmbedding | undefined>(n);
        const keyOf = new Array<string>(n);
        /** First index of each key that missed memory; later copies reuse its entry. */
        const firstOf = new Map<string, number>();
        const copies: [number, number][] = [];
        /** Inputs this request computes, each registered in the in-flight map. */
        let owned: number[] = [];
        const flights = new Map<number, Flight>();
        /** Inputs another request is computing right now. */
        const joined: [number, Flight][] = [];
        let coalesced = 0;
        let truncatedHits = 0;

        // Checked before any input is registered in flight, so a refusal leaves nothing behind.
        for (let i = 0; i < n; i++) this.precheck(inputs[i]!, `${field}[${i}]`);
        for (let i = 0; i < n; i++) {
            const input = inputs[i]!;
            const key = keys.key(input);
            keyOf[i] = key;
            const first = firstOf.get(key);
            if (first !== undefined) {
                copies.push([i, first]);
                coalesced++;
                continue;
            }
            const hit = cache.getMemory(key);
            if (hit && hit.vector.length === dimensions) {
                entries[i] = hit;
                if (hit.truncated) truncatedHits++;
                continue;
            }
            firstOf.set(key, i);
            const flight = cache.inFlight.get(key);
            if (flight) {
                joined.push([i, flight]);
                coalesced++;
                continue;
            }
            // Registered before the first await, so a concurrent request with this input joins it.
            const own = new Flight();
            cache.inFlight.set(key, own);
            flights.set(i, own);
            owned.push(i);
        }
        if (coalesced) this.metrics.cacheCoalesced.inc(coalesced);
        if (truncatedHits) this.metrics.truncated.inc({ model: handle.id }, truncatedHits);

        // Every input hit memory (the hot path): no tokenizer, no batcher, no Redis.
        if (owned.length === 0 && joined.length === 0) {
            for (const [i, first] of copies) entries[i] = entries[first];
            if (request.admit) await request.admit(sumTokens(entries as CachedEmbedding[]));
            return entries as CachedEmbedding[];
        }

        const tokensAt = new Map<number, number>();
        try {
            if (owned.length > 0 && cache.redis) {
                const found = await cache.redis.getMany(owned.map((i) => hashKey(keyOf[i]!)));
                const promoted: [string, CachedEmbedding][] = [];
                owned.forEach((i, j) => {
                    const e = found[j];
                    if (!e || e.vector.length !== dimensions) return;
                    entries[i] = e;
                    promoted.push([keyOf[i]!, e]);
                    flights.get(i)!.resolve(e);
                    if (e.truncated) this.metrics.truncated.inc({ model: handle.id });
                });
                cache.putMemory(promoted);
                if (promoted.length) owned = owned.filter((i) => entries[i] === undefined);
            }

            const work = await this.tokenizeAll(handle, owned, inputs, prefix, truncate, field);
            owned.forEach((i, j) => flights.get(i)!.knowTokens(work[j]!.sequence.length));
            const workIndex = [...owned];

            // A joined input's owner may fail before it knows the input is valid; then this request
            // checks the input itself, so a refusal names this request's field.
            const joinedTokens = await Promise.all(joined.map(([, f]) => f.tokens.catch(() => undefined)));
            const orphans = new Set<number>();
            joined.forEach(([i], j) => {
                const t = joinedTokens[j];
                if (t === undefined) orphans.add(i);
                else tokensAt.set(i, t);
            });
            if (orphans.size > 0) {
                const extra = await this.tokenizeAll(handle, [...orphans], inputs, prefix, truncate, field);
                work.push(...extra);
                workIndex.push(...orphans);
            }

            if (request.admit) {
                workIndex.forEach((i, j) => tokensAt.set(i, work[j]!.sequence.length));
                let tokens = 0;
                for (let i = 0; i < n; i++) tokens += entries[i]?.tokens ?? tokensAt.get(i) ?? 0;
                for (const [, first] of copies) tokens += entries[first]?.tokens ?? tokensAt.get(first) ?? 0;
                await request.admit(tokens);
            }

            if (work.length > 0) {
                const computed = await this.run(handle, work, request, normalize);
                const fresh: [string, CachedEmbedding][] = [];
                workIndex.forEach((i, j) => {
                    const e = computed[j]!;
                    entries[i] = e;
                    fresh.push([keyOf[i]!, e]);
                    flights.get(i)?.resolve(e);
                });
                cache.put(fresh);
            }

            // Joined inputs whose owner gave up after all are computed here, together.
            const live = joined.filter(([i]) => !orphans.has(i));
            const results = await Promise.all(live.map(([, f]) => f.result.catch(() => undefined)));
            const retry: number[] = [];
            live.forEach(([i], j) => {
                const e = results[j];
                if (e) entries[i] = e;
                else retry.push(i);
            });
            if (retry.length > 0) {
                const again = await this.tokenizeAll(handle, retry, inputs, prefix, truncate, field);
                const computed = await this.run(handle, again, request, normalize);
                cache.put(retry.map((i, j) => [keyOf[i]!, (entries[i] = computed[j]!)] as const));
            }
        } finally {
            // Whatever this request did not finish, the requests that joined it must not wait on.
            for (const [i, flight] of flights) {
                const key = keyOf[i]!;
                if (cache.inFlight.get(key) === flight) cache.inFlight.delete(key);
                flight.reject(new Error("abandoned"));
            }
        }
        for (const [i, first] of copies) entries[i] = entries[first];
        return entries as CachedEmbedding[];
    }

    /** Queues tokenized inputs and post-processes their vectors. */
    private async run(handle: ModelHandle, tokenized: readonly Tokenized[], request: EmbedRequest, normalize: boolean): Promise<CachedEmbedding[]> {
        const raw = await handle.batcher!.submit(
            tokenized.map((t) => t.sequence),
            typeof request.signal === "function" ? request.signal() : request.signal,
        );
        return raw.map((v, i) => ({
            vector: postprocess(v, { normalize, dimensions: request.dimensions }),
            tokens: tokenized[i]!.sequence.length,
            truncated: tokenized[i]!.truncated,
        }));
    }

    /** Tokenizes inputs[i] for each listed index; errors name `${field}[i]`. */
    private async tokenizeAll(
        handle: ModelHandle,
        indices: readonly number[],
        inputs: readonly EmbedInput[],
        prefix: string,
        truncate: boolean,
        field: string,
    ): Promise<Tokenized[]> {
        if (indices.length === 0) return [];
        const start = performance.now();
        const out = await Promise.all(indices.map((i) => this.tokenize(handle, inputs[i]!, prefix, truncate, `${field}[${i}]`)));
        this.metrics.tokenizeDuration.observe({ model: handle.id }, (performance.now() - start) / 1000);
        return out;
    }

    /**
     * The checks a cache hit must pass too, because they depend on this server's limits rather than
     * on the input alone. Everything intrinsic to the input (valid Unicode, no NUL, token ids in
     * range, fits the context) was checked when its vector was computed, and the key covers it.
     */
    private precheck(input: EmbedInput, param: string) {
        if (typeof input === "string") {
            if (input.length === 0) throw new InvalidRequestError(`${param} is an empty string; every input needs at least one character`, { param });
            if (input.length > this.limits.maxInputChars) {
                throw new InputTooLongError(`${param} has ${input.length} characters; the limit is ${this.limits.maxInputChars}`, { param });
            }
        } else if (input.length === 0) {
            throw new InvalidRequestError(`${param} is an empty token array`, { param });
        }
    }

    private promptFor(handle: ModelHandle, request: EmbedRequest): string {
        const prompts = handle.config.prompts as Record<string, string | undefined>;
        const name = request.promptName ?? request.inputType ?? handle.config.defaultPrompt;
        if (name === undefined) return "";
        const prompt = prompts[name];
        if (prompt !== undefined) return prompt;
        // query/document without a configured prompt simply means "no prefix" for this model.
        if (request.promptName === undefined && (name === "query" || name === "document")) return "";
        const known = Object.keys(prompts).filter((k) => prompts[k] !== undefined);
        throw new InvalidRequestError(
            `prompt_name "${name}" is not configured for model "${handle.id}"; available: ${known.length ? known.join(", ") : "none"}`,
            { param: "prompt_name" },
        );
    }

    private async tokenize(handle: ModelHandle, input: EmbedInput, prefix: string, truncate: boolean, param: string): Promise<Tokenized> {
        const engine = handle.engine!;
        const limit = engine.info.contextLength;
        if (typeof input === "string") {
            if (input.length === 0) throw new InvalidRequestError(`${param} is an empty string; every input needs at least one character`, { param });
            if (LONE_SURROGATE.test(input)) {
                throw new InvalidRequestError(`${param} contains an unpaired UTF-16 surrogate; send valid Unicode text`, { param });
            }
            if (input.includes("\0")) throw new InvalidRequestError(`${param} contains a NUL character (\\u0000), which text inputs may not`, { param });
            if (input.length > this.limits.maxInputChars) {
                throw new InputTooLongError(`${param} has ${input.length} characters; the limit is ${this.limits.maxInputChars}`, { param });
            }
            const { prefix: before, suffix: after } = engine.specialTokens;
            const content = await engine.tokenize(prefix + input, false);
            const room = limit - before.length - after.length;
            let body = content;
            let truncated = false;
            if (content.length > room) {
                if (!truncate) {
                    throw new InputTooLongError(
                        `${param} has ${content.length + before.length + after.length} tokens; model "${handle.id}" accepts at most ${limit}. Shorten it or send truncate: true`,
                        { param },
                    );
                }
                this.metrics.truncated.inc({ model: handle.id });
                // Special tokens stay around the cut text, as the model saw them in training.
                body = content.subarray(0, room);
                truncated = true;
            }
            const out = new Uint32Array(before.length + body.length + after.length);
            out.set(before, 0);
            out.set(body, before.length);
            out.set(after, before.length + body.length);
            return { sequence: out, truncated };
        }
        if (input.length === 0) throw new InvalidRequestError(`${param} is an empty token array`, { param });
        const vocab = engine.info.vocabSize;
        for (let j = 0; j < input.length; j++) {
            const id = input[j]!;
            if (!Number.isInteger(id) || id < 0 || (vocab > 0 && id >= vocab)) {
                throw new InvalidRequestError(`${param}[${j}] = ${id} is not a token id of model "${handle.id}" (0 to ${vocab - 1})`, {
                    param: `${param}[${j}]`,
                });
            }
        }
        if (input.length > limit) {
            if (!truncate) {
                throw new InputTooLongError(`${param} has ${input.length} tokens; model "${handle.id}" accepts at most ${limit}. Shorten it or send truncate: true`, {
                    param,
                });
            }
            this.metrics.truncated.inc({ model: handle.id });
            return { sequence: Uint32Array.from(input.slice(0, limit)), truncated: true };
        }
        return { sequence: Uint32Array.from(input), truncated: false };
    }
}
