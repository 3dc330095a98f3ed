/**
 * The contract every model runtime fulfils. The service and the batcher only
 * talk to this interface, so the node-llama-cpp engine and the native batched
 * engine are interchangeable.
 */

/** How per-token hidden states become one vector per sequence. */
export type PoolingType = "none" | "mean" | "cls" | "last" | "rank";

export type EngineKind = "native" | "node-llama-cpp";
export type GpuBackend = "metal" | "cuda" | "vulkan" | "cpu";

export interface EngineLoadOptions {
    /** Absolute path of the GGUF file. */
    modelPath: string;
    /** Context (tokens) one sequence may use. Default: the model's training context, capped at 8192. */
    contextSize?: number;
    /** Logical batch size in tokens (llama.cpp n_batch): the most tokens one decode takes. Default 2048. */
    batchSize?: number;
    /** Physical micro-batch in tokens (n_ubatch). For non-causal models it must be >= every sequence. Default = batchSize. */
    ubatchSize?: number;
    /** CPU threads for decode. Default: all physical cores. */
    threads?: number;
    /** Layers offloaded to the GPU: a number, "auto" (as many as fit) or "max". Default "auto". */
    gpuLayers?: number | "auto" | "max";
    /** Most sequences one decode carries (n_seq_max). Default 8. */
    maxSequences?: number;
    /** Overrides the pooling stored in the GGUF. */
    pooling?: PoolingType;
}

export interface EngineModelInfo {
    /** general.architecture, e.g. "bert", "qwen3". */
    architecture: string;
    /** Length of the output vector (n_embd). */
    dimensions: number;
    pooling: PoolingType;
    /** Context the model was trained with. */
    trainContextLength: number;
    /** Context one sequence may use in this engine (<= batch/ubatch limits). */
    contextLength: number;
    /** Quantization / file type, e.g. "Q8_0", "F16", "MOSTLY_Q4_0". */
    fileType: string;
    parameterCount: number;
    fileSizeBytes: number;
    vocabSize: number;
    /** True for decoder models (causal attention). */
    causal: boolean;
}

export interface EngineBackendInfo {
    engine: EngineKind;
    gpu: GpuBackend;
    threads: number;
    gpuLayers: number;
    /** Free-form build description, e.g. llama.cpp commit or system info. */
    details?: string;
}

export interface SpecialTokens {
    /** Tokens the tokenizer puts before the text when special tokens are added (e.g. [CLS], BOS). */
    prefix: number[];
    /** Tokens after the text (e.g. [SEP], EOS). */
    suffix: number[];
}

export interface EmbedCallOptions {
    /** CPU threads for this call (engines that cannot change it ignore it). */
    threads?: number;
}

export interface Engine {
    readonly info: EngineModelInfo;
    readonly backend: EngineBackendInfo;
    /** Most tokens (summed over sequences) one embed() call should carry. */
    readonly maxBatchTokens: number;
    /** Most sequences one embed() call should carry. */
    readonly maxBatchSequences: number;
    /** Special tokens wrapped around text by tokenize(text, true). */
    readonly specialTokens: SpecialTokens;
    /** Batches the engine computes at the same time (a pool of copies); 1 when absent. */
    readonly concurrency?: number;

    /** Tokenizes text; with addSpecial the model's special tokens are added as its tokenizer would. */
    tokenize(text: string, addSpecial: boolean): Promise<Uint32Array>;

    /**
     * Embeds token sequences, returning one raw (not normalised) pooled vector per sequence,
     * in input order. Callers keep each sequence <= info.contextLength and the batch within
     * maxBatchTokens / maxBatchSequences; an engine may still split internally.
     */
    embed(sequences: readonly Uint32Array[], options?: EmbedCallOptions): Promise<Float32Array[]>;

    dispose(): Promise<void>;
}
