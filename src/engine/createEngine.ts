import { availableParallelism } from "node:os";
import type { Engine, EngineLoadOptions } from "./engine.js";
import { EnginePool } from "./enginePool.js";
import { LlamaCppEngine } from "./llamaCppEngine.js";

export type EngineChoice = "auto" | "native" | "node-llama-cpp";

export interface CreateEngineOptions extends EngineLoadOptions {
    engine: EngineChoice;
    /** Copies decoding in parallel (EnginePool); threads default to the cores divided among them. */
    replicas?: number;
    /** Told once why the native engine is not used. */
    onFallback?: (reason: string) => void;
}

interface NativeModule {
    NativeEngine: { create(options: EngineLoadOptions): Promise<Engine> };
    nativeUnavailableReason(): string | undefined;
}

let fallbackReported = false;

async function loadNative(): Promise<NativeModule | string> {
    try {
        // Resolved at run time: the module only exists where the native addon is part of the build.
        const specifier = "./nativeEngine.js";
        const mod = (await import(specifier)) as NativeModule;
        const reason = mod.nativeUnavailableReason();
        return reason ?? mod;
    } catch (err) {
        return `native engine module failed to load: ${(err as Error).message}`;
    }
}

/** Picks the runtime for a model: the native batched addon when built, node-llama-cpp otherwise. */
export async function createEngine(options: CreateEngineOptions): Promise<Engine> {
    const { replicas = 1, ...single } = options;
    if (replicas <= 1) return createOne(single);
    const threads = single.threads ?? Math.max(1, Math.floor(availableParallelism() / replicas));
    const engines: Engine[] = [];
    try {
        for (let i = 0; i < replicas; i++) engines.push(await createOne({ ...single, threads }));
    } catch (err) {
        await Promise.all(engines.map((e) => e.dispose()));
        throw err;
    }
    return new EnginePool(engines);
}

async function createOne(options: Omit<CreateEngineOptions, "replicas">): Promise<Engine> {
    const { engine, onFallback, ...load } = options;
    if (engine !== "node-llama-cpp") {
        const native = await loadNative();
        if (typeof native !== "string") return native.NativeEngine.create(load);
        if (engine === "native") throw new Error(`engine "native" was requested but ${native}`);
        if (!fallbackReported) {
            fallbackReported = true;
            onFallback?.(native);
        }
    }
    return LlamaCppEngine.create(load);
}
