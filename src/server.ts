import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { EmbeddingCache } from "./cache/embeddingCache.js";
import { computeFileIdentity, setFileIdentity } from "./cache/fileIdentity.js";
import { createRedisClient } from "./cache/redisClient.js";
import { RedisVectorStore } from "./cache/redisVectorStore.js";
import type { Config, ModelConfig } from "./config/schema.js";
import { EmbedService } from "./core/embedService.js";
import { createEngine } from "./engine/createEngine.js";
import { chooseReplicas } from "./engine/replicaPlan.js";
import type { Engine } from "./engine/engine.js";
import { buildApp } from "./http/app.js";
import type { Lifecycle } from "./http/routes/system.js";
import { resolveModel } from "./models/download.js";
import { ModelError } from "./models/errors.js";
import { createProgressPrinter } from "./models/progress.js";
import { estimateModelMemory } from "./models/memoryEstimate.js";
import { ModelRegistry, type EngineLoader, type MemoryEstimator } from "./models/registry.js";
import { Metrics } from "./observability/metrics.js";
import { VERSION } from "./version.js";

export interface EmbeddingServer {
    app: FastifyInstance;
    registry: ModelRegistry;
    service: EmbedService;
    metrics: Metrics;
    lifecycle: Lifecycle;
    /** The embedding cache, unless cache.enabled is off (or it has no layer). */
    cache: EmbeddingCache | undefined;
    /** Loads every model; /health is 503 until it resolves. */
    loadModels(): Promise<void>;
    /** Stops taking requests, lets in-flight ones finish (up to drainTimeoutMs), frees the models. */
    close(): Promise<void>;
}

export interface CreateServerOptions {
    config: Config;
    logger: Logger;
    /**
     * Replaces how a model file becomes an engine (tests inject faults through it). Its engines
     * use the embedding cache only if it records their file identity (cache/fileIdentity.ts).
     */
    loader?: EngineLoader;
    /** Replaces the memory estimate taken before each load. */
    estimateMemory?: MemoryEstimator;
}

/**
 * Turns a configured model (local path, hf:user/repo[:quant] or URL) into a local file,
 * pulling it into the cache when missing. Progress goes to stderr on a terminal.
 */
export async function resolveModelPath(model: ModelConfig, logger?: Logger): Promise<string> {
    const printer = process.stderr.isTTY ? createProgressPrinter({ stream: process.stderr }) : undefined;
    try {
        return (await resolveModel(model.path, { onProgress: printer?.onProgress })).path;
    } catch (err) {
        if (!model.fallbackPath || !(err instanceof ModelError) || !["MODEL_QUANT_NOT_FOUND", "MODEL_QUANT_AMBIGUOUS"].includes(err.code)) throw err;
        logger?.warn({ wanted: model.path, using: model.fallbackPath, reason: err.message }, "model not available in the wanted quantization; using the fallback");
        return (await resolveModel(model.fallbackPath, { onProgress: printer?.onProgress })).path;
    } finally {
        printer?.finish();
    }
}

/**
 * Runs `fn` once per config object (a hot swap brings a new one) and shares the promise: the
 * memory estimate and the load both need the model's local file and its replica count, and
 * resolving twice would mean a second hub round trip and a second log line. A failure is not
 * remembered, so the next load attempt (a lazy model's next request) retries.
 */
function oncePerConfig<T>(fn: (model: ModelConfig, logger?: Logger) => Promise<T>): (model: ModelConfig, logger?: Logger) => Promise<T> {
    const results = new WeakMap<ModelConfig, Promise<T>>();
    return (model, logger) => {
        let result = results.get(model);
        if (!result) {
            result = fn(model, logger);
            results.set(model, result);
            result.catch(() => results.delete(model));
        }
        return result;
    };
}

const resolveOnce = oncePerConfig((model, logger) => resolveModelPath(model, logger));

/** `replicas: auto` resolved for this machine and file, and explained in the log. */
const replicasOnce = oncePerConfig(async (model, logger) => {
    const modelPath = await resolveOnce(model, logger);
    const decision = await chooseReplicas({ configured: model.replicas, engine: model.engine, threads: model.threads, gpuLayers: model.gpuLayers, modelPath });
    if (decision.reason) logger?.info(`model ${model.id ?? model.path}: ${decision.replicas} engine ${decision.replicas === 1 ? "copy" : "copies"} (replicas auto: ${decision.reason})`);
    return decision.replicas;
});

/** Reads the GGUF header and sizes weights plus KV cache for the model's configuration. */
export function defaultMemoryEstimator(logger?: Logger): MemoryEstimator {
    return async (model: ModelConfig): Promise<number> => {
        const path = await resolveOnce(model, logger);
        const gpuLayers = model.gpuLayers === "max" || model.gpuLayers === "auto" ? 1_000_000 : model.gpuLayers;
        const estimate = await estimateModelMemory(path, { contextSize: model.contextSize, batchSize: model.batchSize, sequences: model.maxSequences, gpuLayers });
        return estimate.totalBytes * (await replicasOnce(model, logger));
    };
}

export function defaultEngineLoader(logger: Logger): EngineLoader {
    return async (model: ModelConfig): Promise<Engine> => {
        const modelPath = await resolveOnce(model, logger);
        const engine = await createEngine({
            modelPath,
            engine: model.engine,
            replicas: await replicasOnce(model, logger),
            contextSize: model.contextSize,
            batchSize: model.batchSize,
            ubatchSize: model.ubatchSize,
            threads: model.threads,
            gpuLayers: model.gpuLayers,
            maxSequences: model.maxSequences,
            pooling: model.pooling,
            onFallback: (reason) => logger.warn(`native engine unavailable (${reason}); using the node-llama-cpp engine`),
        });
        // The embedding cache keys vectors by the file's content, so a replaced file never serves stale vectors.
        setFileIdentity(engine, await computeFileIdentity(modelPath));
        return engine;
    };
}

/** Wires config, models, service and HTTP together. Listening is the caller's job. */
export async function createServer(options: CreateServerOptions): Promise<EmbeddingServer> {
    const { config, logger } = options;
    const metrics = new Metrics();
    const lifecycle: Lifecycle = { draining: false };
    const redis =
        config.redis.url && ((config.cache.enabled && config.cache.redis) || (config.rateLimit.enabled && config.rateLimit.redis))
            ? createRedisClient(config.redis, logger)
            : undefined;
    const cache = config.cache.enabled && (config.cache.memoryBytes > 0 || (redis && config.cache.redis))
        ? new EmbeddingCache({
              memoryBytes: config.cache.memoryBytes,
              redis: redis && config.cache.redis ? new RedisVectorStore(redis, { prefix: "emb:", ttlSeconds: config.cache.ttlSeconds, metrics, logger }) : undefined,
              metrics,
          })
        : undefined;
    const registry = new ModelRegistry({
        loader: options.loader ?? defaultEngineLoader(logger),
        estimateMemory: options.estimateMemory ?? defaultMemoryEstimator(logger),
        limits: config.limits,
        logger,
        metrics,
    });
    registry.register(config.models);
    const service = new EmbedService(registry, config.limits, metrics, cache);
    const app = await buildApp({ config, registry, service, metrics, logger, version: VERSION, lifecycle, rateLimitStores: { redis } });

    let closing: Promise<void> | undefined;
    const close = () =>
        (closing ??= (async () => {
            lifecycle.draining = true;
            const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), config.server.drainTimeoutMs).unref());
            const result = await Promise.race([app.close().then(() => "closed" as const), timeout]);
            if (result === "timeout") logger.warn({ drainTimeoutMs: config.server.drainTimeoutMs }, "drain timeout reached; closing with requests in flight");
            await registry.dispose();
            await redis?.quit().catch(() => redis.disconnect());
        })());

    return { app, registry, service, metrics, lifecycle, cache, loadModels: () => registry.loadAll(), close };
}
