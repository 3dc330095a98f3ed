import { availableParallelism } from "node:os";
import { stat } from "node:fs/promises";
import {
    getLlama,
    LlamaLogLevel,
    LlamaVocabularyType,
    type Llama,
    type LlamaEmbeddingContext,
    type LlamaModel,
} from "node-llama-cpp";
import type { Engine, EngineBackendInfo, EngineLoadOptions, EngineModelInfo, GpuBackend, SpecialTokens } from "./engine.js";
import { archValue, fileTypeName, poolingFromId } from "./ggufNames.js";
import { blockMacsOf, SMALL_MODEL_MACS_PER_TOKEN } from "./replicaPlan.js";

let llamaPromise: Promise<Llama> | undefined;

/** One llama.cpp runtime per process: node-llama-cpp loads its native binding once. */
function sharedLlama(): Promise<Llama> {
    llamaPromise ??= getLlama({
        // Building from source at run time would need the network; the prebuilt binaries are enough.
        build: "never",
        logLevel: process.env.EMBEDDING_SERVER_LLAMA_LOG ? LlamaLogLevel.debug : LlamaLogLevel.error,
    });
    return llamaPromise;
}

function gpuName(gpu: Llama["gpu"]): GpuBackend {
    return gpu === false ? "cpu" : gpu;
}

/**
 * The portable engine, built on node-llama-cpp's prebuilt binaries. Its embedding context
 * evaluates one sequence per call, so this engine keeps a small pool of contexts and spreads
 * a batch across them; the native engine is the fast path.
 */
export class LlamaCppEngine implements Engine {
    readonly maxBatchTokens: number;
    readonly maxBatchSequences: number;
    private disposed = false;

    private constructor(
        private readonly model: LlamaModel,
        private readonly contexts: LlamaEmbeddingContext[],
        readonly info: EngineModelInfo,
        readonly backend: EngineBackendInfo,
        readonly specialTokens: SpecialTokens,
    ) {
        this.maxBatchSequences = Math.max(contexts.length * 2, 1);
        this.maxBatchTokens = info.contextLength * this.maxBatchSequences;
    }

    static async create(options: EngineLoadOptions): Promise<LlamaCppEngine> {
        const llama = await sharedLlama();
        const model = await llama.loadModel({
            modelPath: options.modelPath,
            gpuLayers: options.gpuLayers ?? "auto",
        });
        try {
            const meta = model.fileInfo.metadata as unknown as Record<string, Record<string, unknown>>;
            const arch = String(meta.general?.architecture ?? model.fileInfo.metadata.general.architecture);
            const archMeta = (meta[arch] ?? {}) as Record<string, unknown>;
            const trainContext = model.trainContextSize;
            const contextLength = Math.min(options.contextSize ?? Math.min(trainContext, 8192), trainContext);
            const threads = options.threads ?? Math.max(1, availableParallelism());
            const onGpu = llama.gpu !== false && model.gpuLayers > 0;
            // Separate contexts evaluate in parallel on CPU threads, which pays for a small model
            // (measured on 2 cores: 101 vs 61 embeddings/s under load). A large model gains nothing
            // from it and a lone request would get only its share of the threads (Qwen3-0.6B shape:
            // 3.3 vs 5.9 embeddings/s one at a time), and on a GPU one context saturates it.
            const small = blockMacsOf(model.fileInfo) <= SMALL_MODEL_MACS_PER_TOKEN;
            const poolSize = onGpu || !small ? 1 : Math.max(1, Math.min(options.maxSequences ?? 4, threads, 4));
            const threadsPerContext = onGpu ? threads : Math.max(1, Math.floor(threads / poolSize));
            const contexts: LlamaEmbeddingContext[] = [];
            for (let i = 0; i < poolSize; i++) {
                contexts.push(
                    await model.createEmbeddingContext({
                        contextSize: contextLength,
                        batchSize: Math.max(contextLength, options.batchSize ?? 512),
                        threads: threadsPerContext,
                    }),
                );
            }
            const info: EngineModelInfo = {
                architecture: arch,
                dimensions: model.embeddingVectorSize,
                pooling: options.pooling ?? poolingFromId(archMeta.pooling_type as number | undefined, arch === "bert" ? "cls" : "last"),
                trainContextLength: trainContext,
                // node-llama-cpp refuses inputs that fill the whole context, so one token stays free.
                contextLength: contextLength - 1,
                fileType: fileTypeName(meta.general?.file_type as number | undefined),
                parameterCount: model.fileInsights.totalParameters,
                fileSizeBytes: (await stat(options.modelPath)).size,
                vocabSize: vocabSizeOf(meta),
                causal: archValue(model.fileInfo.metadata, "attention.causal") !== false && !model.fileInsights.hasEncoder,
            };
            const backend: EngineBackendInfo = {
                engine: "node-llama-cpp",
                gpu: onGpu ? gpuName(llama.gpu) : "cpu",
                threads: threadsPerContext * poolSize,
                gpuLayers: model.gpuLayers,
                details: `node-llama-cpp ${poolSize} context(s) x ${threadsPerContext} thread(s), llama.cpp ${llama.llamaCppRelease.release}`,
            };
            return new LlamaCppEngine(model, contexts, info, backend, specialTokensOf(model));
        } catch (err) {
            await model.dispose();
            throw err;
        }
    }

    async tokenize(text: string, addSpecial: boolean): Promise<Uint32Array> {
        this.assertAlive();
        const content = this.model.tokenize(text, false) as number[];
        if (!addSpecial) return Uint32Array.from(content);
        return Uint32Array.from([...this.specialTokens.prefix, ...content, ...this.specialTokens.suffix]);
    }

    async embed(sequences: readonly Uint32Array[]): Promise<Float32Array[]> {
        this.assertAlive();
        const out = new Array<Float32Array>(sequences.length);
        let next = 0;
        // Each context pulls the next sequence until none are left: a simple work queue.
        await Promise.all(
            this.contexts.map(async (ctx) => {
                while (next < sequences.length) {
                    const i = next++;
                    const tokens = Array.from(sequences[i]!);
                    const embedding = await ctx.getEmbeddingFor(tokens as never);
                    out[i] = Float32Array.from(embedding.vector);
                }
            }),
        );
        return out;
    }

    async dispose(): Promise<void> {
        if (this.disposed) return;
        this.disposed = true;
        for (const ctx of this.contexts) await ctx.dispose();
        await this.model.dispose();
    }

    private assertAlive() {
        if (this.disposed) throw new Error("engine is disposed");
    }
}

/** Mirrors llama.cpp's tokenizer: which special tokens wrap a text for this vocabulary type. */
function specialTokensOf(model: LlamaModel): SpecialTokens {
    const { tokens } = model;
    const type = model.vocabularyType;
    const prefix: number[] = [];
    const suffix: number[] = [];
    if (type === LlamaVocabularyType.wpm) {
        if (tokens.bos != null) prefix.push(tokens.bos);
        if (tokens.sep != null) suffix.push(tokens.sep);
    } else if (type !== LlamaVocabularyType.rwkv) {
        if (type !== LlamaVocabularyType.ugm && tokens.shouldPrependBosToken && tokens.bos != null) prefix.push(tokens.bos);
        if ((type === LlamaVocabularyType.ugm || tokens.shouldAppendEosToken) && tokens.eos != null) suffix.push(tokens.eos);
    }
    return { prefix, suffix };
}

function vocabSizeOf(meta: Record<string, Record<string, unknown>>): number {
    const tokens = (meta.tokenizer?.ggml as Record<string, unknown> | undefined)?.tokens;
    return Array.isArray(tokens) ? tokens.length : 0;
}
