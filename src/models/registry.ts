import { totalmem } from "node:os";
import { basename } from "node:path";
import type { Logger } from "pino";
import type { Config, ModelConfig } from "../config/schema.js";
import { Batcher } from "../core/batcher.js";
import { InsufficientMemoryError, ModelLoadFailedError, ModelNotFoundError, UnavailableError } from "../core/errors.js";
import type { Engine } from "../engine/engine.js";
import type { Metrics } from "../observability/metrics.js";
import { formatGiB } from "./memoryEstimate.js";

export type ModelState = "unloaded" | "loading" | "ready" | "draining" | "failed";
const STATES: readonly ModelState[] = ["unloaded", "loading", "ready", "draining", "failed"];

/** Loads a model's engine; injected so tests and hot swap can supply their own. */
export type EngineLoader = (model: ModelConfig) => Promise<Engine>;

/** Estimates a model's memory before loading it; undefined skips the budget check. */
export type MemoryEstimator = (model: ModelConfig) => Promise<number | undefined>;

/** One served model: its engine, its queue, and a count of requests using it. */
export class ModelHandle {
    state: ModelState = "unloaded";
    engine: Engine | undefined;
    batcher: Batcher | undefined;
    loadSeconds: number | undefined;
    /** Estimated bytes while loaded, charged against the memory budget. */
    memoryBytes = 0;
    error: string | undefined;
    loading: Promise<void> | undefined;
    lastUsed = Date.now();
    private inFlight = 0;
    private idleWaiters: (() => void)[] = [];

    constructor(readonly id: string, readonly config: ModelConfig) {}

    get aliases(): string[] {
        return this.config.aliases;
    }

    get busy(): boolean {
        return this.inFlight > 0;
    }

    /** Marks a request as using this model, so a swap or unload waits for it. */
    acquire(): () => void {
        this.inFlight++;
        this.lastUsed = Date.now();
        let released = false;
        return () => {
            if (released) return;
            released = true;
            this.inFlight--;
            this.lastUsed = Date.now();
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
    const path = model.path.replace(/^hf:/, "").replace(/:[^/:]+$/, "");
    return basename(path).replace(/\.gguf$/i, "") || path;
}

export interface ModelRegistryOptions {
    loader: EngineLoader;
    limits: Config["limits"];
    logger: Logger;
    metrics: Metrics;
    estimateMemory?: MemoryEstimator;
    /** Total RAM for the budget; os.totalmem() by default. */
    totalMemoryBytes?: number;
}

/**
 * Every model the server knows, by id and alias, with its lifecycle. Models can be added,
 * replaced and removed while serving: a replacement loads beside the old one, the id switches
 * to it in one step, and the old one drains its in-flight requests before it is freed.
 */
export class ModelRegistry {
    private readonly handles = new Map<string, ModelHandle>();
    private order: string[] = [];
    private idleTimer: NodeJS.Timeout | undefined;
    /** Serialises add/replace/remove so two admin calls never interleave. */
    private changes: Promise<unknown> = Promise.resolve();

    constructor(private readonly options: ModelRegistryOptions) {}

    /** Registers the configured models without loading them. */
    register(models: readonly ModelConfig[]): void {
        for (const model of models) {
            const id = defaultModelId(model);
            if (this.handles.has(id)) throw new Error(`two models share the id "${id}"; give them distinct ids`);
            const handle = new ModelHandle(id, model);
            this.insert(handle);
            this.setState(handle, "unloaded");
        }
    }

    /** Loads every model that is not lazy. */
    async loadAll(): Promise<void> {
        for (const id of this.order) {
            const handle = this.handles.get(id)!;
            if (!handle.config.lazy) await this.ensureLoaded(handle);
        }
        this.startIdleSweeper();
    }

    /**
     * Resolves a model for one request and holds it until release(): a lazy or idle-unloaded
     * model is loaded first. No name means the default (first) model.
     */
    async use(name?: string): Promise<{ handle: ModelHandle; release: () => void }> {
        const handle = this.find(name);
        const retry = handle.state === "failed" && handle.config.lazy;
        if (handle.state === "unloaded" || retry || (handle.state === "loading" && handle.loading)) await this.ensureLoaded(handle);
        if (handle.state !== "ready") {
            throw new UnavailableError(`model "${handle.id}" is ${handle.state}${handle.error ? `: ${handle.error}` : ""}`, {
                retryAfterSeconds: handle.state === "loading" ? 2 : undefined,
            });
        }
        return { handle, release: handle.acquire() };
    }

    /** Finds a ready model by id or alias without loading anything. */
    resolve(name?: string): ModelHandle {
        const handle = this.find(name);
        if (handle.state !== "ready") throw new UnavailableError(`model "${handle.id}" is ${handle.state}`, { retryAfterSeconds: 2 });
        return handle;
    }

    list(): ModelHandle[] {
        return this.order.map((id) => this.handles.get(id)!);
    }

    /** True once every eagerly loaded model is ready: what /health reports. */
    get ready(): boolean {
        return this.order.length > 0 && this.list().every((h) => h.state === "ready" || (h.state === "unloaded" && (h.config.lazy || h.config.idleUnloadSeconds > 0)));
    }

    /** Adds a model, or replaces the one with the same id without dropping a request. */
    async put(config: ModelConfig): Promise<{ id: string; replaced: boolean }> {
        return this.serialized(async () => {
            const id = defaultModelId(config);
            const next = new ModelHandle(id, config);
            const old = this.handles.get(id);
            // Load beside the old model; a failure leaves the old one serving.
            try {
                await this.ensureLoaded(next, old);
            } catch (err) {
                if (err instanceof InsufficientMemoryError) throw err;
                throw new ModelLoadFailedError(`model "${id}" failed to load: ${(err as Error).message}`, { param: "path", cause: err });
            }
            if (old) {
                this.handles.set(id, next);
                this.options.logger.info({ model: id }, "model replaced; draining the previous instance");
                await this.retire(old);
            } else {
                this.insert(next);
            }
            return { id, replaced: old !== undefined };
        });
    }

    /** Removes a model once its in-flight requests are done. */
    async remove(id: string): Promise<void> {
        return this.serialized(async () => {
            const handle = this.handles.get(id);
            if (!handle) throw new ModelNotFoundError(`model "${id}" does not exist`, { param: "id" });
            if (this.order.length === 1) throw new UnavailableError("cannot remove the last model; add another first");
            this.handles.delete(id);
            this.order = this.order.filter((x) => x !== id);
            await this.retire(handle);
        });
    }

    /**
     * Brings the served set in line with a new configuration (SIGHUP): new ids are added,
     * changed ones replaced with zero downtime, missing ones removed. Unchanged models are untouched.
     */
    async reconcile(models: readonly ModelConfig[]): Promise<{ added: string[]; replaced: string[]; removed: string[] }> {
        const wanted = new Map(models.map((m) => [defaultModelId(m), m]));
        const result = { added: [] as string[], replaced: [] as string[], removed: [] as string[] };
        for (const [id, config] of wanted) {
            const current = this.handles.get(id);
            if (current && JSON.stringify(current.config) === JSON.stringify({ ...config, id: current.config.id })) continue;
            const { replaced } = await this.put({ ...config, id });
            (replaced ? result.replaced : result.added).push(id);
        }
        for (const id of [...this.order]) {
            if (wanted.has(id)) continue;
            await this.remove(id);
            result.removed.push(id);
        }
        // Keep the configured order, so the first configured model stays the default.
        this.order = [...wanted.keys()].filter((id) => this.handles.has(id));
        return result;
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
        if (this.idleTimer) clearInterval(this.idleTimer);
        for (const h of this.list()) await this.retire(h);
    }

    private insert(handle: ModelHandle) {
        this.handles.set(handle.id, handle);
        this.order.push(handle.id);
    }

    private find(name?: string): ModelHandle {
        if (name === undefined || name === "") return this.handles.get(this.order[0]!)!;
        const direct = this.handles.get(name);
        if (direct) return direct;
        for (const id of this.order) {
            const h = this.handles.get(id)!;
            if (h.aliases.includes(name)) return h;
        }
        throw new ModelNotFoundError(`model "${name}" does not exist; available: ${this.order.join(", ")}`, { param: "model" });
    }

    private serialized<T>(fn: () => Promise<T>): Promise<T> {
        const run = this.changes.then(fn, fn);
        this.changes = run.catch(() => undefined);
        return run;
    }

    /** Bytes of every loaded model except `except`, for the memory budget. */
    private memoryInUse(except?: ModelHandle): number {
        let total = 0;
        for (const h of this.handles.values()) if (h !== except && h.engine) total += h.memoryBytes;
        return total;
    }

    /** Loads once; concurrent callers share the same attempt. `replacing` is freed later, so it is not charged twice. */
    private ensureLoaded(handle: ModelHandle, replacing?: ModelHandle): Promise<void> {
        if (handle.state === "ready") return Promise.resolve();
        handle.loading ??= this.load(handle, replacing).finally(() => {
            handle.loading = undefined;
        });
        return handle.loading;
    }

    private async load(handle: ModelHandle, replacing?: ModelHandle): Promise<void> {
        const { logger, metrics, limits } = this.options;
        this.setState(handle, "loading");
        handle.error = undefined;
        const start = performance.now();
        try {
            const estimate = this.options.estimateMemory ? await this.options.estimateMemory(handle.config) : undefined;
            if (estimate !== undefined) {
                const total = this.options.totalMemoryBytes ?? totalmem();
                const budget = total * limits.modelMemoryFraction;
                // A replaced model overlaps its successor only for the swap, so it is not charged.
                const inUse = this.memoryInUse(handle) - (replacing?.engine ? replacing.memoryBytes : 0);
                if (inUse + estimate > budget) {
                    throw new InsufficientMemoryError(
                        `model "${handle.id}" needs about ${formatGiB(estimate)} but only ${formatGiB(Math.max(0, budget - inUse))} of the ` +
                            `${formatGiB(budget)} budget is free (limits.modelMemoryFraction = ${limits.modelMemoryFraction} of ${formatGiB(total)} RAM, ` +
                            `${formatGiB(inUse)} used by loaded models). Lower model.contextSize, batchSize or maxSequences, use a smaller quantization, or raise the fraction.`,
                    );
                }
                handle.memoryBytes = estimate;
            }
            const engine = await this.options.loader(handle.config);
            handle.engine = engine;
            handle.batcher = this.createBatcher(handle.id, engine);
            handle.loadSeconds = (performance.now() - start) / 1000;
            handle.lastUsed = Date.now();
            metrics.modelLoadSeconds.set({ model: handle.id }, handle.loadSeconds);
            this.setState(handle, "ready");
            logger.info(
                { model: handle.id, seconds: Number(handle.loadSeconds.toFixed(3)), engine: engine.backend.engine, gpu: engine.backend.gpu, memoryEstimate: handle.memoryBytes, ...engine.info },
                "model loaded",
            );
        } catch (err) {
            handle.error = (err as Error).message;
            handle.memoryBytes = 0;
            this.setState(handle, "failed");
            logger.error({ model: handle.id, err: handle.error }, "model failed to load");
            throw err;
        }
    }

    /** Stops routing to a handle, waits for its requests, frees its engine. */
    private async retire(handle: ModelHandle): Promise<void> {
        if (!handle.engine) {
            this.setState(handle, "unloaded");
            return;
        }
        this.setState(handle, "draining");
        await handle.whenIdle();
        await handle.batcher?.drain();
        await handle.engine.dispose();
        handle.engine = undefined;
        handle.batcher = undefined;
        handle.memoryBytes = 0;
        this.setState(handle, "unloaded");
    }

    private startIdleSweeper() {
        if (this.idleTimer || !this.list().some((h) => h.config.idleUnloadSeconds > 0)) return;
        this.idleTimer = setInterval(() => void this.unloadIdle(), 1000);
        this.idleTimer.unref();
    }

    private async unloadIdle() {
        const now = Date.now();
        for (const h of this.list()) {
            const limit = h.config.idleUnloadSeconds * 1000;
            if (limit > 0 && h.state === "ready" && !h.busy && !h.batcher?.busy && now - h.lastUsed >= limit) {
                this.options.logger.info({ model: h.id, idleSeconds: h.config.idleUnloadSeconds }, "unloading idle model");
                await this.retire(h);
            }
        }
    }

    private createBatcher(id: string, engine: Engine): Batcher {
        const { metrics, logger, limits } = this.options;
        return new Batcher(engine, {
            maxBatchTokens: engine.maxBatchTokens,
            maxBatchSequences: engine.maxBatchSequences,
            maxQueuedTokens: limits.maxQueuedTokens,
            maxInFlight: engine.concurrency ?? 1,
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
        // A replaced handle shares its id with its successor; only the routed one speaks for the id.
        if (this.handles.get(handle.id) !== handle && this.handles.has(handle.id)) return;
        for (const s of STATES) this.options.metrics.modelState.set({ model: handle.id, state: s }, s === state ? 1 : 0);
    }
}
