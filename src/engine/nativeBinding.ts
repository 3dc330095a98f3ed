/**
 * Loads the native batched embedding addon (native/build/embedding_native.node, produced by
 * scripts/build-native.mjs). Works from src/ under tsx and from the compiled dist/ tree, because
 * it finds the package root by walking up to package.json rather than by a fixed relative path.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The addon's `abiVersion`; bumped when the JS-visible surface changes. */
export const NATIVE_ABI_VERSION = 1;

export type NativePoolingName = "none" | "mean" | "cls" | "last" | "rank" | "unspecified";

/** What `Model#info` reports (see native/src/addon.cpp info_object). */
export interface NativeModelInfo {
    architecture: string;
    /** general.name, may be empty. */
    name: string;
    /** llama_model_desc, e.g. "qwen3 0.6B Q8_0". */
    description: string;
    /** Short file type, e.g. "F16", "Q8_0", "Q4_K_M". */
    fileType: string;
    /** llama_ftype_name, e.g. "Q4_K - Medium". */
    fileTypeName: string;
    /** Hidden size of the output (llama_model_n_embd_out). */
    nEmbd: number;
    /** Floats per sequence returned by embed(): nEmbd, or nClsOut for rank pooling. */
    outputDims: number;
    nCtxTrain: number;
    nLayer: number;
    nParams: number;
    /** Bytes of tensor data. */
    modelSize: number;
    vocabSize: number;
    /** llama_vocab_type: 1 SPM, 2 BPE, 3 WPM, 4 UGM, 5 RWKV, 6 PLaMo-2. */
    vocabType: number;
    /** Pooling the context applies; "none" means embed() mean-pools the token outputs itself. */
    pooling: NativePoolingName;
    /** Causal attention (decoder); false for encoders such as BERT. */
    causal: boolean;
    hasEncoder: boolean;
    hasDecoder: boolean;
    /** Whether the context has a KV cache (false for BERT-like encoders). */
    hasMemory: boolean;
    /** One KV stream shared by all sequences (true) or one per sequence (false). */
    kvUnified: boolean;
    /** Last-token pooling done by the addon from one output per sequence (skips the LM head on other tokens). */
    lastTokenOnly: boolean;
    nClsOut: number;
    /** Special token ids, -1 when the vocabulary has none. */
    bos: number;
    eos: number;
    sep: number;
    eot: number;
    pad: number;
    addBos: boolean;
    addEos: boolean;
    addSep: boolean;
    /** Context as created. */
    nCtx: number;
    nCtxSeq: number;
    nBatch: number;
    nUbatch: number;
    nSeqMax: number;
    /** Longest sequence embed() accepts. */
    maxSequenceTokens: number;
    /** Most tokens packed into one llama_decode. */
    maxBatchTokens: number;
    /** Most tokens embed() packs into one decode; fewer than maxBatchTokens for an encoder on the CPU. */
    packTokens: number;
    threads: number;
    /** Layers actually offloaded (0 on CPU). */
    gpuLayers: number;
    /** "metal" | "cuda" | "vulkan" | "cpu" (or another backend name in lower case). */
    gpu: string;
    /** Human-readable device list, e.g. "Metal (Apple M2 Max), CPU (Apple M2 Max)". */
    devices: string;
}

export interface NativeLoadOptions {
    /** Layers to offload; negative = all. */
    gpuLayers?: number;
    /** <= 0: physical cores. */
    threads?: number;
    /** Tokens per sequence; <= 0: training context capped at 8192. */
    contextSize?: number;
    batchSize?: number;
    ubatchSize?: number;
    maxSequences?: number;
    pooling?: "none" | "mean" | "cls" | "last" | "rank";
    /** Default true. False lets llama.cpp pool last-token models itself (for comparisons). */
    lastTokenOutputs?: boolean;
}

export interface NativeModel {
    readonly info: NativeModelInfo;
    readonly disposed: boolean;
    /** Synchronous (llama.cpp's tokenizer is thread-safe and fast). */
    tokenize(text: string, addSpecial?: boolean, parseSpecial?: boolean): Uint32Array;
    /** Same, on libuv's thread pool, for long texts. */
    tokenizeAsync(text: string, addSpecial?: boolean, parseSpecial?: boolean): Promise<Uint32Array>;
    /** One vector of info.outputDims floats per sequence, concatenated in input order. */
    /** threads > 0 decodes this call with that many threads (llama_set_n_threads). */
    embed(sequences: readonly Uint32Array[], threads?: number): Promise<Float32Array>;
    /** Frees context and model; later calls throw. Idempotent. */
    dispose(): Promise<void>;
}

export interface NativeDevice {
    name: string;
    description: string;
    backend: string;
    type: "cpu" | "gpu" | "igpu" | "accel" | "other";
    memoryFree: number;
    memoryTotal: number;
}

export interface NativeAddon {
    abiVersion: number;
    loadModel(path: string, options?: NativeLoadOptions): Promise<NativeModel>;
    systemInfo(): string;
    devices(): NativeDevice[];
    physicalCores(): number;
    setLogging(enabled: boolean): void;
}

export type NativeBinding = { addon: NativeAddon; path: string; reason?: undefined } | { addon: undefined; path: string; reason: string };

/** The package root: the nearest ancestor of this module holding package.json. */
export function packageRoot(): string {
    let dir = dirname(fileURLToPath(import.meta.url));
    for (;;) {
        if (existsSync(join(dir, "package.json"))) return dir;
        const parent = dirname(dir);
        if (parent === dir) return resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
        dir = parent;
    }
}

/** Where the addon is expected (EMBEDDING_SERVER_NATIVE_ADDON overrides). */
export function nativeAddonPath(): string {
    const override = process.env.EMBEDDING_SERVER_NATIVE_ADDON;
    return override ? resolve(override) : join(packageRoot(), "native", "build", "embedding_native.node");
}

let cached: NativeBinding | undefined;

/**
 * libgomp (the addon's OpenMP on Linux) spins 300k iterations at every barrier by default. When
 * the cores are shared with other busy processes that collapses throughput (measured: 290 -> 10
 * embeddings/s on 2 shared cores), while a short spin costs almost nothing on idle cores
 * (3000: ~280 vs ~290 idle, ~105 instead of ~10 contended). libgomp reads this when it is loaded,
 * so it is set before the addon is; an explicit GOMP_SPINCOUNT / OMP_WAIT_POLICY wins.
 */
function tuneOpenMp(): void {
    if (process.platform === "darwin") return; // no OpenMP in the macOS build
    if (process.env.GOMP_SPINCOUNT === undefined && process.env.OMP_WAIT_POLICY === undefined) {
        process.env.GOMP_SPINCOUNT = "3000";
    }
}

/** Loads the addon once; `addon` is undefined (with a reason) when it is not built or not loadable. */
export function loadNativeBinding(): NativeBinding {
    if (cached) return cached;
    const path = nativeAddonPath();
    if (process.env.EMBEDDING_SERVER_SKIP_NATIVE === "1") {
        cached = { addon: undefined, path, reason: "EMBEDDING_SERVER_SKIP_NATIVE=1" };
    } else if (!existsSync(path)) {
        cached = { addon: undefined, path, reason: `the native addon is not built (${path} is missing; run node scripts/build-native.mjs)` };
    } else {
        try {
            tuneOpenMp();
            const require = createRequire(import.meta.url);
            const addon = require(path) as NativeAddon;
            if (addon.abiVersion !== NATIVE_ABI_VERSION) {
                cached = {
                    addon: undefined,
                    path,
                    reason: `the native addon at ${path} is stale (abi ${String(addon.abiVersion)}, expected ${NATIVE_ABI_VERSION}); run node scripts/build-native.mjs`,
                };
            } else {
                cached = { addon, path };
            }
        } catch (err) {
            cached = { addon: undefined, path, reason: `the native addon failed to load: ${(err as Error).message}` };
        }
    }
    return cached;
}
