import { basename } from "node:path";
import type { Logger } from "pino";
import type { Config, ModelConfig } from "../config/schema.js";
import { Batcher } from "../core/batcher.js";
import { ModelNotFoundError, UnavailableError } from "../core/errors.js";
import type { Engine } from "../engine/engine.js";
import type { Metrics } from "../observability/metrics.js";

export type ModelState = "loading" | "ready" | "draining" | "failed";

/** Loads a model's engine; injected so tests and hot swap can supply their own. */
export type EngineLoader = (model: ModelConfig) => Promise<Engine>;

/** One served model: its engine, its queue, and a count of requests using it. */
export class ModelHandle {
    state: ModelState = "loading";
    engine: Engine | undefined;
    batcher: Batcher | undefined;
    loadSeconds: number | undefined;
    error: string | undefined;
    private inFlight = 0;
    private idleWaiters: (() => void)[] = [];

    constructor(readonly id: string, readonly config: ModelConfig) {}

    get aliases(): string[] {
        return this.config.aliases;
    }

    /** Marks a request as using this model, so a swap drains it before unloading. */
    acquire(): () => void {
        this.inFlight++;
        let released = false;
        return () => {
            if (released) return;
            released = true;
            this.inFlight--;
            if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
        };
    }

    whenIdle(): Promise<void> {
        return this.inFlight === 0 ? Promise.resolve() : new Promise((r) => this.idleWaiters.push(r));
    }
}

/** The file name without extension: what people call a model when they give no id. */
export function defaultModelId(model: ModelConfig): string {
    if (model.id) return model.id;
    const path = model.path.replace(/^hf:/, "");
    return basename(path).replace(/\.gguf$/i, "") || path;
}

export interface ModelRegistryOptions {
    loader: EngineLoader;
    limits: Config["limits"];
    logger: Logger;
    metrics: Metrics;
}

/** Every model the server knows, by id and alias, with its lifecycle state. */
export class ModelRegistry {
    private readonly handles = new Map<string, ModelHandle>();
    private order: string[] = [];

    constructor(private readonly options: ModelRegistryOptions) {}

    /** Registers the configured models (state "loading"); call loadAll() to load them. */
    register(models: readonly ModelConfig[]): void {
        for (const model of models) {
            const id = defaultModelId(model);
            if (this.handles.has(id)) throw new Error(`two models share the id "${id}"; give them distinct ids`);
            const handle = new ModelHandle(id, model);
            this.handles.set(id, handle);
            this.order.push(id);
            this.setState(handle, "loading");
        }
    }

    async loadAll(): Promise<void> {
        for (const id of this.order) await this.load(this.handles.get(id)!);
    }

    private async load(handle: ModelHandle): Promise<void> {
        const start = performance.now();
        try {
            const engine = await this.options.loader(handle.config);
            handle.engine = engine;
            handle.batcher = this.createBatcher(handle.id, engine);
            handle.loadSeconds = (performance.now() - start) / 1000;
            this.options.metrics.modelLoadSeconds.set({ model: handle.id }, handle.loadSeconds);
            this.setState(handle, "ready");
            this.options.logger.info(
                { model: handle.id, seconds: Number(handle.loadSeconds.toFixed(3)), engine: engine.backend.engine, gpu: engine.backend.gpu, ...engine.info },
                "model loaded",
            );
        } catch (err) {
            handle.error = (err as Error).message;
            this.setState(handle, "failed");
            throw err;
        }
    }

    private createBatcher(id: string, engine: Engine): Batcher {
        const { metrics, logger, limits } = this.options;
        return new Batcher(engine, {
            maxBatchTokens: engine.maxBatchTokens,
            maxBatchSequences: engine.maxBatchSequences,
            maxQueuedTokens: limits.maxQueuedTokens,
            onBatch: (stats) => {
                metrics.batchSequences.observe({ model: id }, stats.sequences);
                metrics.batchTokens.observe({ model: id }, stats.tokens);
                metrics.inferenceDuration.observe({ model: id }, stats.inferenceSeconds);
                for (const s of stats.queueSeconds) metrics.queueDuration.observe({ model: id }, s);
            },
            onError: (err) => logger.error({ model: id, err }, "engine call failed"),
        });
    }

    private setState(handle: ModelHandle, state: ModelState) {
        handle.state = state;
        for (const s of ["loading", "ready", "draining", "failed"] as const) {
            this.options.metrics.modelState.set({ model: handle.id, state: s }, s === state ? 1 : 0);
        }
    }

    /** Finds a ready model by id or alias; no name means the default (first) model. */
    resolve(name?: string): ModelHandle {
        const handle = name === undefined || name === "" ? this.handles.get(this.order[0]!) : this.find(name);
        if (!handle) {
            throw new ModelNotFoundError(`model "${name}" does not exist; available: ${this.order.join(", ")}`, { param: "model" });
        }
        if (handle.state !== "ready") {
            throw new UnavailableError(`model "${handle.id}" is ${handle.state}${handle.error ? `: ${handle.error}` : ""}`, {
                retryAfterSeconds: handle.state === "loading" ? 2 : undefined,
            });
        }
        return handle;
    }

    private find(name: string): ModelHandle | undefined {
        const direct = this.handles.get(name);
        if (direct) return direct;
        for (const id of this.order) {
            const h = this.handles.get(id)!;
            if (h.aliases.includes(name)) return h;
        }
        return undefined;
    }

    list(): ModelHandle[] {
        return this.order.map((id) => this.handles.get(id)!);
    }

    /** True once every model is ready: what /health reports. */
    get ready(): boolean {
        return this.order.length > 0 && this.list().every((h) => h.state === "ready");
    }

    /** Refreshes the queue gauges; called when /metrics is scraped. */
    updateGauges(): void {
        for (const h of this.list()) {
            this.options.metrics.queueDepth.set({ model: h.id }, h.batcher?.depth ?? 0);
            this.options.metrics.queueTokens.set({ model: h.id }, h.batcher?.pendingTokens ?? 0);
        }
    }

    /** Waits for in-flight work, then frees every engine. */
    async dispose(): Promise<void> {
        for (const h of this.list()) {
            this.setState(h, "draining");
            await h.whenIdle();
            await h.batcher?.drain();
            await h.engine?.dispose();
            h.engine = undefined;
        }
    }
}
