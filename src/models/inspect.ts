import { stat } from "node:fs/promises";
import { GgufInsights } from "node-llama-cpp";
import { readGgufHeader } from "../engine/ggufHeader.js";
import { archValue, fileTypeName, poolingFromId } from "../engine/ggufNames.js";
import { estimateModelMemory, type MemoryEstimate } from "./memoryEstimate.js";

export interface ModelInspection {
    path: string;
    fileSizeBytes: number;
    name?: string;
    architecture: string;
    dimensions?: number;
    pooling: string;
    causal: boolean;
    trainContextLength?: number;
    layers: number;
    quantization: string;
    parameters: number;
    tokenizer: { model?: string; pre?: string; vocabSize: number; addBos?: boolean; addEos?: boolean };
    memory: MemoryEstimate & { contextSize: number; batchSize: number; sequences: number };
}

/** Reads a GGUF header and describes what serving it would mean. No weights are loaded. */
export async function inspectModel(path: string, options: { contextSize?: number; batchSize?: number; sequences?: number } = {}): Promise<ModelInspection> {
    const info = await readGgufHeader(path);
    const insights = await GgufInsights.from(info);
    const meta = info.metadata as unknown as Record<string, Record<string, unknown> | undefined>;
    const general = meta.general ?? {};
    const arch = String(general.architecture);
    const archMeta = meta[arch] ?? {};
    const tokenizer = ((meta.tokenizer as Record<string, unknown> | undefined)?.ggml ?? {}) as Record<string, unknown>;
    const tokens = tokenizer.tokens;
    const causal = archValue(info.metadata, "attention.causal") !== false;
    const batchSize = options.batchSize ?? 2048;
    const sequences = options.sequences ?? 16;
    const contextSize = Math.min(options.contextSize ?? Math.min(insights.trainContextSize ?? 2048, 8192), insights.trainContextSize ?? Infinity);
    const memory = await estimateModelMemory(path, { contextSize, batchSize, sequences, gpuLayers: 0 });
    return {
        path,
        fileSizeBytes: (await stat(path)).size,
        name: typeof general.name === "string" ? general.name : undefined,
        architecture: arch,
        dimensions: insights.embeddingVectorSize,
        pooling: poolingFromId(archMeta.pooling_type as number | undefined, causal ? "last" : "cls"),
        causal,
        trainContextLength: insights.trainContextSize,
        layers: Number(archValue(info.metadata, "block_count") ?? insights.totalLayers),
        quantization: fileTypeName(general.file_type as number | undefined),
        parameters: insights.totalParameters,
        tokenizer: {
            model: tokenizer.model as string | undefined,
            pre: tokenizer.pre as string | undefined,
            vocabSize: Array.isArray(tokens) ? tokens.length : 0,
            addBos: tokenizer.add_bos_token as boolean | undefined,
            addEos: tokenizer.add_eos_token as boolean | undefined,
        },
        memory: { modelBytes: memory.modelBytes, contextBytes: memory.contextBytes, totalBytes: memory.totalBytes, contextSize, batchSize, sequences },
    };
}
