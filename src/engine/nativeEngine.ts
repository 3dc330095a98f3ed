/**
 * The fast engine: the native addon packs many sequences into each llama_decode of one
 * llama.cpp context (built from source with native CPU flags, OpenMP, Metal or CUDA), on a
 * dedicated thread per model. See native/src/ and scripts/build-native.mjs.
 */
import { stat } from "node:fs/promises";
import type {
    Engine,
    EngineBackendInfo,
    EngineLoadOptions,
    EngineModelInfo,
    GpuBackend,
    PoolingType,
    SpecialTokens,
    EmbedCallOptions,
} from "./engine.js";
import { loadNativeBinding, type NativeModel, type NativeModelInfo } from "./nativeBinding.js";

/** Why the native engine cannot be used here, or undefined when it can. */
export function nativeUnavailableReason(): string | undefined {
    return loadNativeBinding().reason;
}

/** Texts longer than this are tokenized on the thread pool instead of the JS thread. */
const SYNC_TOKENIZE_MAX_CHARS = 16 * 1024;

const GPU_BACKENDS: readonly GpuBackend[] = ["metal", "cuda", "vulkan", "cpu"];

function positiveInt(name: string, value: number | undefined): number | undefined {
    if (value === undefined) return undefined;
    if (!Number.isInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer, got ${value}`);
    return value;
}

function gpuLayersOption(value: EngineLoadOptions["gpuLayers"]): number {
    if (value === undefined || value === "auto" || value === "max") return -1;
    if (!Number.isInteger(value) || value < 0) throw new RangeError(`gpuLayers must be a non-negative integer, "auto" or "max", got ${value}`);
    return value;
}

/** Where `needle` occurs in `hay` as a contiguous run, or -1. */
function indexOfRun(hay: Uint32Array, needle: Uint32Array): number {
    if (needle.length === 0) return -1;
    outer: for (let i = 0; i + needle.length <= hay.length; i++) {
        for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
        return i;
    }
    return -1;
}

/**
 * The tokens tokenize(text, true) wraps around the text. Measured on a probe text, so it is
 * exactly what llama.cpp's tokenizer does for this vocabulary; falls back to the add_* flags.
 */
function specialTokensOf(model: NativeModel): SpecialTokens {
    const info = model.info;
    for (const probe of ["hello world", "a"]) {
        const plain = model.tokenize(probe, false);
        const wrapped = model.tokenize(probe, true);
        const at = indexOfRun(wrapped, plain);
        if (at >= 0) return { prefix: Array.from(wrapped.subarray(0, at)), suffix: Array.from(wrapped.subarray(at + plain.length)) };
    }
    const prefix = info.addBos && info.bos >= 0 ? [info.bos] : [];
    const suffix: number[] = [];
    if (info.addSep && info.sep >= 0) suffix.push(info.sep);
    if (info.addEos && info.eos >= 0) suffix.push(info.eos);
    return { prefix, suffix };
}

function poolingOf(info: NativeModelInfo): PoolingType {
    return info.pooling === "unspecified" ? "none" : info.pooling;
}

export class NativeEngine implements Engine {
    readonly maxBatchTokens: number;
    readonly maxBatchSequences: number;
    private disposed = false;

    private constructor(
        private readonly model: NativeModel,
        readonly info: EngineModelInfo,
        readonly backend: EngineBackendInfo,
        readonly specialTokens: SpecialTokens,
        /** The addon's own description of the loaded model and context. */
        readonly nativeInfo: NativeModelInfo,
    ) {
        // One embed() call = one llama_decode: the batcher's batches map 1:1 onto decodes (a lone
        // sequence longer than packTokens still goes in one).
        this.maxBatchTokens = nativeInfo.packTokens;
        this.maxBatchSequences = nativeInfo.nSeqMax;
    }

    static async create(options: EngineLoadOptions): Promise<NativeEngine> {
        const binding = loadNativeBinding();
        if (!binding.addon) throw new Error(`native engine unavailable: ${binding.reason}`);
        const { addon } = binding;

        const batchSize = positiveInt("batchSize", options.batchSize) ?? 2048;
        const model = await addon.loadModel(options.modelPath, {
            gpuLayers: gpuLayersOption(options.gpuLayers),
            threads: positiveInt("threads", options.threads) ?? 0,
            contextSize: positiveInt("contextSize", options.contextSize) ?? 0,
            batchSize,
            ubatchSize: positiveInt("ubatchSize", options.ubatchSize) ?? batchSize,
            maxSequences: positiveInt("maxSequences", options.maxSequences) ?? 8,
            ...(options.pooling ? { pooling: options.pooling } : {}),
        });
        try {
            const n = model.info;
            const fileSizeBytes = (await stat(options.modelPath)).size;
            const info: EngineModelInfo = {
                architecture: n.architecture,
                dimensions: n.outputDims,
                pooling: poolingOf(n),
                trainContextLength: n.nCtxTrain,
                contextLength: n.maxSequenceTokens,
                fileType: n.fileType,
                parameterCount: n.nParams,
                fileSizeBytes,
                vocabSize: n.vocabSize,
                causal: n.causal,
            };
            const gpu = (GPU_BACKENDS as readonly string[]).includes(n.gpu) ? (n.gpu as GpuBackend) : "cpu";
            const backend: EngineBackendInfo = {
                engine: "native",
                gpu,
                threads: n.threads,
                gpuLayers: n.gpuLayers,
                details:
                    `llama.cpp static build; devices: ${n.devices}; ` +
                    `n_seq_max=${n.nSeqMax} n_batch=${n.nBatch} n_ubatch=${n.nUbatch} ` +
                    `${n.hasMemory ? `n_ctx=${n.nCtx} kv=${n.kvUnified ? "unified" : "per-sequence"}` : "kv=none"}` +
                    `${n.lastTokenOnly ? " outputs=last-token" : ""}; ` +
                    addon.systemInfo().replace(/[\s|]+$/, ""),
            };
            return new NativeEngine(model, info, backend, specialTokensOf(model), n);
        } catch (err) {
            await model.dispose();
            throw err;
        }
    }

    async tokenize(text: string, addSpecial: boolean): Promise<Uint32Array> {
        this.assertAlive();
        if (text.length <= SYNC_TOKENIZE_MAX_CHARS) return this.model.tokenize(text, addSpecial);
        return this.model.tokenizeAsync(text, addSpecial);
    }

    async embed(sequences: readonly Uint32Array[], options?: EmbedCallOptions): Promise<Float32Array[]> {
        this.assertAlive();
        if (sequences.length === 0) return [];
        const flat = await this.model.embed(sequences, options?.threads);
        const d = this.info.dimensions;
        const out = new Array<Float32Array>(sequences.length);
        for (let i = 0; i < sequences.length; i++) out[i] = flat.subarray(i * d, (i + 1) * d);
        return out;
    }

    async dispose(): Promise<void> {
        if (this.disposed) return;
        this.disposed = true;
        await this.model.dispose();
    }

    private assertAlive() {
        if (this.disposed) throw new Error("engine is disposed");
    }
}
