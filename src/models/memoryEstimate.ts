import { GgufInsights } from "node-llama-cpp";
import { readGgufHeader } from "../engine/ggufHeader.js";
import { archValue } from "../engine/ggufNames.js";

export interface MemoryEstimate {
    /** Weights resident in RAM or VRAM. */
    modelBytes: number;
    /** KV cache, compute buffers and outputs for the configured context and batch. */
    contextBytes: number;
    totalBytes: number;
}

export interface MemoryEstimateOptions {
    /** Tokens per sequence. Default: the training context, capped at 8192. */
    contextSize?: number;
    batchSize?: number;
    sequences?: number;
    /** Layers on the GPU; on unified memory (Apple Silicon) RAM and VRAM are one pool, so both count. */
    gpuLayers?: number | "auto" | "max";
}

/**
 * Estimates what loading a GGUF will cost, from its header alone (node-llama-cpp's GGUF
 * insights), so a model that cannot fit is refused before anything is allocated.
 */
export async function estimateModelMemory(path: string, options: MemoryEstimateOptions = {}): Promise<MemoryEstimate & { trainContextSize: number; layers: number }> {
    const info = await readGgufHeader(path);
    const insights = await GgufInsights.from(info);
    const layers = insights.totalLayers;
    const gpuLayers = typeof options.gpuLayers === "number" ? Math.min(options.gpuLayers, layers) : 0;
    const trainContextSize = insights.trainContextSize ?? 2048;
    const batchSize = options.batchSize ?? 2048;
    const causal = archValue(info.metadata, "attention.causal") !== false;
    // Mirrors the native engine's plan: a decoder keeps one KV stream per sequence, each up to a
    // batch long; an encoder packs every sequence into one batch-sized stream.
    const perSequence = Math.min(options.contextSize ?? Math.min(trainContextSize, 8192), trainContextSize, batchSize);
    const kvTokens = causal ? perSequence * (options.sequences ?? 1) : Math.max(perSequence, batchSize);
    const model = await insights.estimateModelResourceRequirementsV2({ gpuLayers });
    const context = await insights.estimateContextResourceRequirementsV2({
        contextSize: kvTokens,
        modelGpuLayers: gpuLayers,
        batchSize,
        sequences: 1,
        isEmbeddingContext: true,
    });
    const modelBytes = model.cpuRam + model.gpuVram;
    const contextBytes = context.cpuRam + context.gpuVram;
    return { modelBytes, contextBytes, totalBytes: modelBytes + contextBytes, trainContextSize, layers };
}

export function formatGiB(bytes: number): string {
    return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}
