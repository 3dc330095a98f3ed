import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { Config, ModelConfig } from "./config/schema.js";
import { EmbedService } from "./core/embedService.js";
import { createEngine } from "./engine/createEngine.js";
import type { Engine } from "./engine/engine.js";
import { buildApp } from "./http/app.js";
import type { Lifecycle } from "./http/routes/system.js";
import { ModelRegistry, type EngineLoader } from "./models/registry.js";
import { Metrics } from "./observability/metrics.js";
import { VERSION } from "./version.js";

export interface EmbeddingServer {
    app: FastifyInstance;
    registry: ModelRegistry;
    service: EmbedService;
    metrics: Metrics;
    lifecycle: Lifecycle;
    /** Loads every model; /health is 503 until it resolves. */
    loadModels(): Promise<void>;
    /** Stops taking requests, lets in-flight ones finish (up to drainTimeoutMs), frees the models. */
    close(): Promise<void>;
}

export interface CreateServerOptions {
    config: Config;
    logger: Logger;
    /** Replaces how a model file becomes an engine (tests inject faults through it). */
    loader?: EngineLoader;
}

/** Turns a configured model path into a local file, or explains why it can't. */
export async function resolveModelPath(model: ModelConfig): Promise<string> {
    const path = resolve(model.path);
    if (!existsSync(path)) throw new Error(`model file ${path} does not exist`);
    return path;
}

export function defaultEngineLoader(logger: Logger): EngineLoader {
    return async (model: ModelConfig): Promise<Engine> =>
        createEngine({
            modelPath: await resolveModelPath(model),
            engine: model.engine,
            contextSize: model.contextSize,
            batchSize: model.batchSize,
            ubatchSize: model.ubatchSize,
            threads: model.threads,
            gpuLayers: model.gpuLayers,
            maxSequences: model.maxSequences,
            pooling: model.pooling,
            onFallback: (reason) => logger.warn(`native engine unavailable (${reason}); using the node-llama-cpp engine`),
        });
}

/** Wires config, models, service and HTTP together. Listening is the caller's job. */
export async function createServer(options: CreateServerOptions): Promise<EmbeddingServer> {
    const { config, logger } = options;
    const metrics = new Metrics();
    const lifecycle: Lifecycle = { draining: false };
    const registry = new ModelRegistry({ loader: options.loader ?? defaultEngineLoader(logger), limits: config.limits, logger, metrics });
    registry.register(config.models);
    const service = new EmbedService(registry, config.limits, metrics);
    const app = await buildApp({ config, registry, service, metrics, logger, version: VERSION, lifecycle });

    let closing: Promise<void> | undefined;
    const close = () =>
        (closing ??= (async () => {
            lifecycle.draining = true;
            const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), config.server.drainTimeoutMs).unref());
            const result = await Promise.race([app.close().then(() => "closed" as const), timeout]);
            if (result === "timeout") logger.warn({ drainTimeoutMs: config.server.drainTimeoutMs }, "drain timeout reached; closing with requests in flight");
            await registry.dispose();
        })());

    return { app, registry, service, metrics, lifecycle, loadModels: () => registry.loadAll(), close };
}
