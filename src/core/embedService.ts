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
    signal?: AbortSignal;
    /** Called with the request's token count before it is queued; throws to refuse (rate limits). */
    admit?: (tokens: number) => Promise<void>;
}

export interface EmbedResult {
    model: string;
    dimensions: number;
    vectors: Float32Array[];
    /** Tokens per input, after prompts, special tokens and truncation. */
    tokenCounts: number[];
    totalTokens: number;
}

/**
 * The request pipeline between HTTP and the engine: limits, prompts, tokenization,
 * long-input policy, queueing and post-processing. Knows nothing about HTTP.
 */
export class EmbedService {
    constructor(
        private readonly registry: ModelRegistry,
        private readonly limits: Config["limits"],
        private readonly metrics: Metrics,
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

        const tokenizeStart = performance.now();
        const sequences = await Promise.all(request.inputs.map((input, i) => this.tokenize(handle, input, prefix, truncate, `${field}[${i}]`)));
        this.metrics.tokenizeDuration.observe({ model: handle.id }, (performance.now() - tokenizeStart) / 1000);
        if (request.admit) await request.admit(sequences.reduce((n, s) => n + s.length, 0));

        const raw = await handle.batcher!.submit(sequences, request.signal);
        const normalize = request.normalize ?? true;
        const vectors = raw.map((v) => postprocess(v, { normalize, dimensions: request.dimensions }));
        const tokenCounts = sequences.map((s) => s.length);
        const totalTokens = tokenCounts.reduce((a, b) => a + b, 0);
        this.metrics.inputs.inc({ model: handle.id }, sequences.length);
        this.metrics.tokens.inc({ model: handle.id }, totalTokens);
        return { model: handle.id, dimensions: vectors[0]!.length, vectors, tokenCounts, totalTokens };
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

    private async tokenize(handle: ModelHandle, input: EmbedInput, prefix: string, truncate: boolean, param: string): Promise<Uint32Array> {
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
            }
            const out = new Uint32Array(before.length + body.length + after.length);
            out.set(before, 0);
            out.set(body, before.length);
            out.set(after, before.length + body.length);
            return out;
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
            return Uint32Array.from(input.slice(0, limit));
        }
        return Uint32Array.from(input);
    }
}
