import { z } from "zod";

/**
 * The one schema for the whole configuration. File, environment and flags are all
 * merged into one plain object and validated here, so every source gets the same
 * checks and the same error messages.
 */

const pooling = z.enum(["none", "mean", "cls", "last", "rank"]);

const promptsSchema = z
    .object({
        /** Prefix for inputs with input_type "query", e.g. nomic's "search_query: ". */
        query: z.string().optional(),
        /** Prefix for inputs with input_type "document", e.g. "search_document: ". */
        document: z.string().optional(),
    })
    .catchall(z.string())
    .default({});

export const modelConfigSchema = z
    .object({
        /** Name clients send as `model`. Default: the file name without .gguf. */
        id: z.string().min(1).max(200).regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, "letters, digits and . _ : / - only").optional(),
        /** Local GGUF path, or a hf:user/repo[:quant] / https URL to pull. */
        path: z.string().min(1),
        /** Used when `path` cannot be resolved, e.g. when the hub lacks a profile's quantization. */
        fallbackPath: z.string().min(1).optional(),
        /** Other names that route to this model. */
        aliases: z.array(z.string().min(1)).default([]),
        /** Tokens one input may use. Default: the model's training context, capped at 8192. */
        contextSize: z.number().int().min(16).max(1_048_576).optional(),
        /** Most tokens one engine call (decode) carries. */
        batchSize: z.number().int().min(16).max(1_048_576).default(2048),
        /** Physical micro-batch; defaults to batchSize. */
        ubatchSize: z.number().int().min(16).max(1_048_576).optional(),
        /** Most sequences one engine call carries. */
        maxSequences: z.number().int().min(1).max(256).default(16),
        /**
         * Engine copies decoding batches in parallel, each with `threads` threads and its own copy of
         * the weights. On a few CPU cores, 2 copies x 1 thread beat 1 x 2 threads for small models;
         * "auto" runs 2 for a small model on the native CPU engine when threads is unset, else 1.
         */
        replicas: z.union([z.number().int().min(1).max(64), z.enum(["auto"])]).default("auto"),
        /** CPU threads per engine copy. Default: the physical cores divided by replicas. */
        threads: z.number().int().min(1).max(1024).optional(),
        /** GPU layers: a count, "auto" (as many as fit) or "max". */
        gpuLayers: z.union([z.number().int().min(0), z.enum(["auto", "max"])]).default("auto"),
        /** Overrides the pooling stored in the GGUF. */
        pooling: pooling.optional(),
        /** Instruction prefixes, picked per request with input_type or prompt_name. */
        prompts: promptsSchema,
        /** Prompt applied when a request names none. */
        defaultPrompt: z.string().optional(),
        /** Which runtime: the native batched addon, node-llama-cpp, or the best available. */
        engine: z.enum(["auto", "native", "node-llama-cpp"]).default("auto"),
        /** Load on first request instead of at start-up. */
        lazy: z.boolean().default(false),
        /** Unload after this many seconds without requests (0: never); it reloads on the next request. */
        idleUnloadSeconds: z.number().int().min(0).max(31_536_000).default(0),
    })
    .strict();

export const configSchema = z
    .object({
        server: z
            .object({
                host: z.string().min(1).default("127.0.0.1"),
                port: z.number().int().min(0).max(65535).default(8080),
                /** Largest request body, in bytes. */
                bodyLimit: z.number().int().min(1024).max(1024 * 1024 * 1024).default(8 * 1024 * 1024),
                /** A request still unanswered after this long gets 504 and its queued work is dropped. */
                requestTimeoutMs: z.number().int().min(100).max(3_600_000).default(60_000),
                /** On SIGTERM/SIGINT, how long in-flight requests may take before the process exits anyway. */
                drainTimeoutMs: z.number().int().min(0).max(3_600_000).default(30_000),
                logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
                /** Trust X-Forwarded-For (behind nginx) for client IPs. */
                trustProxy: z.boolean().default(false),
            })
            .strict()
            .prefault({}),
        auth: z
            .object({
                /** Keys accepted on every route but /health. Empty: no authentication. */
                apiKeys: z.array(z.string().min(8, "at least 8 characters")).default([]),
                /** Keys for the admin routes (model hot swap). */
                adminKeys: z.array(z.string().min(8, "at least 8 characters")).default([]),
            })
            .strict()
            .prefault({}),
        /** The served models; the first is the default for requests that name none. */
        models: z.array(modelConfigSchema).min(1, "at least one model is required (set model.path or --model)"),
        limits: z
            .object({
                /** Most inputs in one request. */
                maxInputsPerRequest: z.number().int().min(1).max(100_000).default(2048),
                /** Longest single text, in characters, checked before tokenizing. */
                maxInputChars: z.number().int().min(1).max(100_000_000).default(200_000),
                /** Cut over-long inputs to the context instead of refusing them (per request: `truncate`). */
                truncate: z.boolean().default(false),
                /** Tokens waiting in a model's queue past which new work is refused with 429. */
                maxQueuedTokens: z.number().int().min(1).max(1_000_000_000).default(262_144),
                /** Share of RAM all loaded models may use together (estimated before loading); a model that would pass it is refused. */
                modelMemoryFraction: z.number().min(0.01).max(1).default(0.5),
            })
            .strict()
            .prefault({}),
        rateLimit: z
            .object({
                enabled: z.boolean().default(false),
                /** Requests per minute per API key (or client IP without auth). */
                requestsPerMinute: z.number().int().min(1).default(600),
                /** Input tokens per minute per API key (or client IP). */
                tokensPerMinute: z.number().int().min(1).default(1_000_000),
                /** Count requests and tokens in Redis (redis.url), so the limits hold across instances. */
                redis: z.boolean().default(true),
            })
            .strict()
            .prefault({}),
        cache: z
            .object({
                /** Serve repeated inputs from the cache instead of the engine. */
                enabled: z.boolean().default(true),
                /** Size of the in-process LRU, in bytes (vectors plus keys); 0 turns the memory layer off. */
                memoryBytes: z.number().int().min(0).max(1024 ** 4).default(256 * 1024 * 1024),
                /** Also keep vectors in Redis (redis.url), shared by every instance. */
                redis: z.boolean().default(true),
                /** How long a vector stays in Redis, in seconds; 0: no expiry (Redis's maxmemory policy decides). */
                ttlSeconds: z.number().int().min(0).max(31_536_000).default(604_800),
            })
            .strict()
            .prefault({}),
        redis: z
            .object({
                /** redis://[:password@]host:port[/db] or rediss://…; unset: cache and rate limits stay in this process. */
                url: z.string().regex(/^rediss?:\/\//, "a redis:// or rediss:// URL").optional(),
                /** Prefix of every key this server writes, so deployments can share one Redis. */
                prefix: z.string().max(200).default("embedding-server:"),
                /** Longest one Redis call may take; past it the server goes on without Redis. */
                timeoutMs: z.number().int().min(1).max(60_000).default(100),
            })
            .strict()
            .prefault({}),
        metrics: z
            .object({
                enabled: z.boolean().default(true),
                /** Serve /metrics without an API key (for a scraper on a private network). */
                public: z.boolean().default(false),
            })
            .strict()
            .prefault({}),
        docs: z.object({ enabled: z.boolean().default(true) }).strict().prefault({}),
    })
    .strict();

export type Config = z.infer<typeof configSchema>;
export type ModelConfig = z.infer<typeof modelConfigSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export { pooling as poolingSchema };
