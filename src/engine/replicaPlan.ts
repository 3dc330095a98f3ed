import { availableParallelism } from "node:os";
import type { GgufFileInfo } from "node-llama-cpp";
import type { EngineChoice } from "./createEngine.js";
import { readGgufHeader } from "./ggufHeader.js";
import { loadNativeBinding } from "./nativeBinding.js";

/**
 * Largest model (multiply-accumulates per token in its transformer blocks) for which `replicas:
 * auto` runs two engine copies on a CPU. Measured on 2 cores: a 6-layer 384-wide BERT (10.6 M)
 * gains 12-20 % throughput from 2 copies x 1 thread over 1 x 2 threads, because a small model's
 * matrix products are too short to amortise a thread barrier per graph node; a Qwen3-0.6B shape
 * (440 M) gains nothing measurable and pays double memory. BERT-base-sized encoders (85 M) sit
 * on the small side.
 */
export const SMALL_MODEL_MACS_PER_TOKEN = 100e6;

/** Multiply-accumulates per token in the blocks' weight matrices (every 2-D `blk.*` tensor). */
export async function blockMacsPerToken(path: string): Promise<number> {
    return blockMacsOf(await readGgufHeader(path));
}

/** The same, from a header already read (a loaded node-llama-cpp model carries one). */
export function blockMacsOf(info: GgufFileInfo): number {
    let macs = 0;
    for (const t of info.fullTensorInfo ?? []) {
        if (!t.name.startsWith("blk.") || t.dimensions.length !== 2) continue;
        macs += Number(t.dimensions[0]) * Number(t.dimensions[1]);
    }
    return macs;
}

export interface ReplicaInputs {
    configured: number | "auto";
    engine: EngineChoice;
    /** model.threads as configured (undefined: the engine picks). */
    threads?: number;
    gpuLayers: number | "auto" | "max";
    macsPerToken: number;
    /** Whether the native engine is available, and whether it sees a GPU. */
    native: { available: boolean; gpu: boolean };
    cores: number;
}

export interface ReplicaDecision {
    replicas: number;
    /** Why, for the load log line; empty when the number was configured. */
    reason: string;
}

const threads = (n: number) => `${n} thread${n === 1 ? "" : "s"}`;

/** Pure decision, so every branch is testable without hardware. */
export function decideReplicas(i: ReplicaInputs): ReplicaDecision {
    if (i.configured !== "auto") return { replicas: i.configured, reason: "" };
    const one = (reason: string): ReplicaDecision => ({ replicas: 1, reason });
    if (i.engine === "node-llama-cpp" || !i.native.available) return one("the node-llama-cpp engine pools its own contexts");
    if (i.native.gpu && i.gpuLayers !== 0) return one("one copy saturates the GPU");
    if (i.threads !== undefined) return one("model.threads is set");
    if (i.cores < 2) return one(`${i.cores} core`);
    if (i.macsPerToken > SMALL_MODEL_MACS_PER_TOKEN) {
        return one(`${(i.macsPerToken / 1e6).toFixed(0)} M MACs per token: one copy with every thread is as fast`);
    }
    return {
        replicas: 2,
        reason: `small model (${(i.macsPerToken / 1e6).toFixed(1)} M MACs per token) on ${i.cores} CPU cores: 2 copies of ${threads(Math.floor(i.cores / 2))} beat 1 of ${threads(i.cores)}`,
    };
}

/** Resolves `replicas: auto` for a model file on this machine. */
export async function chooseReplicas(options: Omit<ReplicaInputs, "macsPerToken" | "native" | "cores"> & { modelPath: string }): Promise<ReplicaDecision> {
    if (options.configured !== "auto") return { replicas: options.configured, reason: "" };
    const binding = options.engine === "node-llama-cpp" ? undefined : loadNativeBinding().addon;
    const native = {
        available: binding !== undefined,
        gpu: binding?.devices().some((d) => d.type === "gpu" || d.type === "igpu") ?? false,
    };
    const cores = binding?.physicalCores() ?? availableParallelism();
    let macsPerToken: number;
    try {
        macsPerToken = await blockMacsPerToken(options.modelPath);
    } catch {
        // The engine's own load reports what is wrong with the file, in its words.
        return { replicas: 1, reason: "the GGUF's tensors could not be read" };
    }
    return decideReplicas({ ...options, native, cores, macsPerToken });
}
