/**
 * NativeEngine (native/ addon) against itself (batched vs single, concurrent vs sequential),
 * against node-llama-cpp's LlamaEmbeddingContext and, when scripts/build-llama-tools.mjs has
 * been run, against llama.cpp's own llama-embedding. Skipped when the addon is not built.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { getLlama, LlamaLogLevel, type Llama, type Token } from "node-llama-cpp";
import { loadNativeBinding } from "../../src/engine/nativeBinding.js";
import { NativeEngine } from "../../src/engine/nativeEngine.js";
import { ensureTestModel, type TestModelPreset } from "../fixtures/testModels.js";
import { PLAIN_TEXTS } from "../fixtures/texts.js";
import { cosineSimilarity as cosine } from "../../src/core/vectors.js";

const execFileAsync = promisify(execFile);

const binding = loadNativeBinding();
const skip = binding.addon ? false : `native addon not built: ${binding.reason}`;

const TEXTS = [
    ...PLAIN_TEXTS,
    "a",
    "Embeddings map text to vectors so that similar meanings end up close together in the space, " +
        "which makes semantic search, clustering and deduplication possible without keyword overlap.",
    "日本語のテキストも正しく処理されるべきです。",
    "x ".repeat(150).trim(),
    "Short one.",
    "Numbers 1234567890 and symbols !@#$%^&*() mixed in",
    "The last sentence of the batch.",
];


/** One embed() call over `seqs` gives each sequence the vector it gets alone. */
async function assertBatchMatchesSingles(engine: NativeEngine, seqs: Uint32Array[]) {
    const together = await engine.embed(seqs);
    for (let i = 0; i < seqs.length; i++) {
        const [alone] = await engine.embed([seqs[i]!]);
        assertClose(together[i]!, alone!, 0.9999, `sequence ${i}`);
    }
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, min: number, what: string) {
    assert.equal(a.length, b.length, `${what}: length`);
    const c = cosine(a, b);
    assert.ok(c >= min, `${what}: cosine ${c} < ${min}`);
}

interface Case {
    preset: TestModelPreset;
    architecture: string;
    pooling: string;
    causal: boolean;
    dims: number;
    trainContext: number;
    vocabSize: number;
    prefix: number[];
    suffix: number[];
}

const CASES: Case[] = [
    // bge WordPiece: [CLS] text [SEP]
    { preset: "bert-tiny", architecture: "bert", pooling: "mean", causal: false, dims: 128, trainContext: 512, vocabSize: 30522, prefix: [101], suffix: [102] },
    // Qwen3-Embedding style: no BOS, <|endoftext|> appended and pooled
    { preset: "qwen3-tiny", architecture: "qwen3", pooling: "last", causal: true, dims: 128, trainContext: 1024, vocabSize: 151936, prefix: [], suffix: [151643] },
];

let llamaPromise: Promise<Llama> | undefined;
function nodeLlama(): Promise<Llama> {
    llamaPromise ??= getLlama({ build: "never", logLevel: LlamaLogLevel.error });
    return llamaPromise;
}

for (const c of CASES) {
    describe(`NativeEngine ${c.preset}`, { skip }, () => {
        let modelPath: string;
        let engine: NativeEngine;
        let tokens: Uint32Array[];

        before(async () => {
            modelPath = await ensureTestModel(c.preset);
            engine = await NativeEngine.create({ modelPath });
            tokens = await Promise.all(TEXTS.map((t) => engine.tokenize(t, true)));
        });
        after(async () => {
            await engine?.dispose();
        });

        it("reports the model", () => {
            assert.equal(engine.info.architecture, c.architecture);
            assert.equal(engine.info.dimensions, c.dims);
            assert.equal(engine.info.pooling, c.pooling);
            assert.equal(engine.info.causal, c.causal);
            assert.equal(engine.info.trainContextLength, c.trainContext);
            assert.equal(engine.info.contextLength, c.trainContext);
            assert.equal(engine.info.vocabSize, c.vocabSize);
            assert.equal(engine.info.fileType, "F32");
            assert.ok(engine.info.parameterCount > 0);
            assert.ok(engine.info.fileSizeBytes > 0);
            assert.equal(engine.backend.engine, "native");
            assert.ok(["metal", "cuda", "vulkan", "cpu"].includes(engine.backend.gpu));
            assert.ok(engine.backend.threads >= 1);
            assert.equal(engine.maxBatchSequences, 8);
            // an encoder on the CPU packs at most 512 tokens per decode (attention spans the whole batch)
            assert.equal(engine.maxBatchTokens, !c.causal && engine.backend.gpu === "cpu" ? 512 : 2048);
            assert.equal(engine.nativeInfo.maxBatchTokens, 2048);
            assert.deepEqual(engine.specialTokens, { prefix: c.prefix, suffix: c.suffix });
            assert.equal(engine.nativeInfo.kvUnified, !c.causal);
            // The addon's patched llama-context.cpp lets a last-token model skip the LM head on
            // every other token; losing the patch (a llama.cpp update) must not go unnoticed.
            assert.equal(engine.nativeInfo.lastTokenOnly, c.pooling === "last");
        });

        it("tokenizes with and without special tokens", async () => {
            const plain = await engine.tokenize("Hello world", false);
            const wrapped = await engine.tokenize("Hello world", true);
            assert.deepEqual(Array.from(wrapped), [...c.prefix, ...plain, ...c.suffix]);
            const long = "lorem ipsum dolor sit amet ".repeat(1000); // > sync threshold: thread pool path
            const viaPool = await engine.tokenize(long, false);
            assert.ok(viaPool.length > 1000);
            assert.ok(viaPool.every((id) => id < c.vocabSize));
        });

        it("gives each sequence of a mixed-length batch the vector it gets alone", async () => {
            // more sequences than n_seq_max, so several decodes per call
            const batch = [...tokens, ...tokens.slice(0, 7).reverse()];
            const together = await engine.embed(batch);
            assert.equal(together.length, batch.length);
            for (let i = 0; i < batch.length; i++) {
                const [alone] = await engine.embed([batch[i]!]);
                assert.ok(together[i]!.every(Number.isFinite), `finite ${i}`);
                assertClose(together[i]!, alone!, 0.9999, `sequence ${i} (${batch[i]!.length} tokens)`);
            }
            // distinct texts give distinct vectors
            assert.ok(cosine(together[0]!, together[1]!) < 0.9999);
        });

        it("serves concurrent embed calls like sequential ones", async () => {
            const sequential: Float32Array[][] = [];
            for (let i = 0; i < 4; i++) sequential.push(await engine.embed(tokens.slice(i * 3, i * 3 + 3)));
            const concurrent = await Promise.all([0, 1, 2, 3].map((i) => engine.embed(tokens.slice(i * 3, i * 3 + 3))));
            for (let i = 0; i < 4; i++) {
                for (let j = 0; j < 3; j++) assertClose(concurrent[i]![j]!, sequential[i]![j]!, 0.99999, `call ${i} seq ${j}`);
            }
        });

        it("matches node-llama-cpp's embedding context", async () => {
            const llama = await nodeLlama();
            const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
            const ctx = await model.createEmbeddingContext({ contextSize: Math.min(512, c.trainContext), threads: 2 });
            try {
                const ours = await engine.embed(tokens);
                for (let i = 0; i < tokens.length; i++) {
                    const theirs = await ctx.getEmbeddingFor(Array.from(tokens[i]!) as Token[]);
                    // node-llama-cpp may normalise; cosine is scale-invariant
                    assertClose(ours[i]!, theirs.vector, 0.999, `text ${i}`);
                }
            } finally {
                await ctx.dispose();
                await model.dispose();
            }
        });

        it("rejects bad input without crashing", async () => {
            await assert.rejects(engine.embed([new Uint32Array([1, c.vocabSize + 5, 2])]), /out of range/);
            await assert.rejects(engine.embed([tokens[0]!, new Uint32Array([0xffffffff])]), /out of range/);
            await assert.rejects(engine.embed([new Uint32Array(0)]), /empty/);
            await assert.rejects(engine.embed([new Uint32Array(engine.info.contextLength + 1).fill(c.prefix[0] ?? 100)]), /at most/);
            // still healthy
            const [v] = await engine.embed([tokens[0]!]);
            assert.equal(v!.length, c.dims);
        });
    });
}

describe("NativeEngine lifecycle", { skip }, () => {
    it("rejects calls after dispose and disposes idempotently", async () => {
        const engine = await NativeEngine.create({ modelPath: await ensureTestModel("bert-tiny"), maxSequences: 4 });
        assert.equal(engine.maxBatchSequences, 4);
        const t = await engine.tokenize("bye", true);
        const pending = engine.embed([t, t, t, t, t, t]);
        await engine.dispose();
        // work queued before dispose still completes
        assert.equal((await pending).length, 6);
        await engine.dispose();
        await assert.rejects(engine.embed([t]), /disposed/);
        await assert.rejects(engine.tokenize("x", true), /disposed/);
    });

    it("rejects calls on a disposed addon model with a JS error", async () => {
        const model = await binding.addon!.loadModel(await ensureTestModel("bert-tiny"));
        await model.dispose();
        assert.equal(model.disposed, true);
        assert.throws(() => model.embed([new Uint32Array([101, 102])]), /disposed/);
        assert.throws(() => model.tokenize("x"), /disposed/);
        await model.dispose();
    });

    it("rejects a missing or invalid model file", async () => {
        await assert.rejects(NativeEngine.create({ modelPath: "/nonexistent/model.gguf" }), /not found/);
        await assert.rejects(NativeEngine.create({ modelPath: new URL(import.meta.url).pathname }), /failed to load model/);
    });

    it("overrides pooling; with none it mean-pools the token outputs itself", async () => {
        const modelPath = await ensureTestModel("bert-tiny");
        const mean = await NativeEngine.create({ modelPath });
        const none = await NativeEngine.create({ modelPath, pooling: "none" });
        const cls = await NativeEngine.create({ modelPath, pooling: "cls" });
        try {
            assert.equal(none.info.pooling, "none");
            assert.equal(cls.info.pooling, "cls");
            const seqs = await Promise.all(TEXTS.slice(0, 6).map((x) => mean.tokenize(x, true)));
            const [a, b, c2] = await Promise.all([mean.embed(seqs), none.embed(seqs), cls.embed(seqs)]);
            for (let i = 0; i < seqs.length; i++) {
                assertClose(b[i]!, a[i]!, 0.9999, `none vs mean ${i}`);
                assert.ok(cosine(c2[i]!, a[i]!) < 0.9999, `cls differs from mean ${i}`);
            }
            await assert.rejects(NativeEngine.create({ modelPath, pooling: "rank" }), /reranker/);
        } finally {
            await Promise.all([mean.dispose(), none.dispose(), cls.dispose()]);
        }
    });

    it("pools a last-token model from one output per sequence exactly as llama.cpp's own last pooling", async () => {
        const modelPath = await ensureTestModel("qwen3-tiny");
        const fast = await binding.addon!.loadModel(modelPath);
        const pooled = await binding.addon!.loadModel(modelPath, { lastTokenOutputs: false });
        // micro-batches of 16 tokens: sequences span several, their outputs land in later ones
        const split = await binding.addon!.loadModel(modelPath, { ubatchSize: 16 });
        try {
            assert.equal(split.info.lastTokenOnly, true);
            assert.equal(split.info.nUbatch, 16);
            assert.equal(fast.info.lastTokenOnly, true);
            assert.equal(pooled.info.lastTokenOnly, false);
            assert.equal(fast.info.pooling, "last");
            assert.equal(pooled.info.pooling, "last");
            // mixed lengths, more sequences than one decode takes
            const seqs = TEXTS.map((x) => fast.tokenize(x, true, false));
            const dims = fast.info.outputDims;
            assert.ok(seqs.some((q) => q.length > 16));
            const [a, b, c2] = await Promise.all([fast.embed(seqs), pooled.embed(seqs), split.embed(seqs)]);
            for (let i = 0; i < seqs.length; i++) {
                const row = (v: Float32Array) => v.subarray(i * dims, (i + 1) * dims);
                assertClose(row(a), row(b), 0.99999, `sequence ${i}`);
                assertClose(row(c2), row(b), 0.99999, `sequence ${i}, 16-token micro-batches`);
            }
        } finally {
            await Promise.all([fast.dispose(), pooled.dispose(), split.dispose()]);
        }
    });

    it("splits an encoder batch beyond its packing limit into several decodes with the same vectors", async () => {
        const engine = await NativeEngine.create({ modelPath: await ensureTestModel("bert-tiny"), maxSequences: 64 });
        try {
            const long = "lorem ipsum dolor sit amet consectetur ".repeat(30);
            // one sequence near the packing limit, then many short ones: > 1,500 tokens in all
            const seqs = [await engine.tokenize(long, true), ...(await Promise.all(TEXTS.concat(TEXTS, TEXTS).map((x) => engine.tokenize(`${x} ${x}`, true))))];
            assert.ok(seqs[0]!.length > engine.maxBatchTokens / 2 && seqs[0]!.length <= engine.maxBatchTokens, `long input has ${seqs[0]!.length} tokens`);
            assert.ok(seqs.reduce((n, q) => n + q.length, 0) > 3 * engine.maxBatchTokens);
            await assertBatchMatchesSingles(engine, seqs);
        } finally {
            await engine.dispose();
        }
    });

    it("honours batch options", async () => {
        const engine = await NativeEngine.create({ modelPath: await ensureTestModel("qwen3-tiny"), batchSize: 256, maxSequences: 3, contextSize: 128 });
        try {
            assert.equal(engine.maxBatchTokens, 256);
            assert.equal(engine.maxBatchSequences, 3);
            assert.equal(engine.info.contextLength, 128);
            const seqs = (await Promise.all(TEXTS.map((x) => engine.tokenize(x, true)))).filter((s) => s.length <= 128);
            assert.ok(seqs.length >= 10);
            await assertBatchMatchesSingles(engine, seqs);
        } finally {
            await engine.dispose();
        }
    });
});

/** llama-embedding from scripts/build-llama-tools.mjs, if it has been built. */
async function llamaEmbeddingBinary(): Promise<string | undefined> {
    try {
        const tools = (await import("../../scripts/build-llama-tools.mjs")) as { existingToolsBinDir(): string | undefined };
        const dir = tools.existingToolsBinDir();
        const bin = dir && join(dir, "llama-embedding");
        return bin && existsSync(bin) ? bin : undefined;
    } catch {
        return undefined;
    }
}

/**
 * llama-embedding prints through llama.cpp's asynchronous logger, which is leaked at exit and
 * now and then loses the tail of the output on a busy machine; retry until the array is whole.
 */
async function runLlamaEmbedding(bin: string, args: string[], expected: number): Promise<number[][]> {
    let last = "";
    for (let attempt = 0; attempt < 4; attempt++) {
        const { stdout } = await execFileAsync(bin, args, { maxBuffer: 64 * 1024 * 1024 });
        last = stdout;
        const start = stdout.indexOf("[");
        if (start < 0) continue;
        try {
            const parsed = JSON.parse(stdout.slice(start)) as number[][];
            if (parsed.length === expected) return parsed;
        } catch {
            // truncated output: run again
        }
    }
    throw new Error(`llama-embedding output was incomplete 4 times; last: ${last.slice(-200)}`);
}

describe("NativeEngine parity with llama-embedding", { skip }, () => {
    for (const preset of ["bert-tiny", "qwen3-tiny"] as const) {
        it(`${preset}: same vectors as llama.cpp's llama-embedding`, async (t) => {
            const bin = await llamaEmbeddingBinary();
            if (!bin) return t.skip("llama-embedding not built (node scripts/build-llama-tools.mjs)");
            const modelPath = await ensureTestModel(preset);
            const engine = await NativeEngine.create({ modelPath });
            try {
                const texts = TEXTS.slice(0, 8);
                const args = ["-m", modelPath, "-p", texts.join("\n"), "--embd-normalize", "-1", "--embd-output-format", "array", "-t", "2", "-c", "2048", "-b", "2048", "-ub", "2048", "--no-warmup", "-np", "8"];
                const theirs = await runLlamaEmbedding(bin, args, texts.length);
                // llama-embedding tokenizes with parse_special; plain texts tokenize the same
                const ours = await engine.embed(await Promise.all(texts.map((x) => engine.tokenize(x, true))));
                // measured 1.000000 with one KV stream per input on both sides; the issue asks for 0.9999
                for (let i = 0; i < texts.length; i++) assertClose(ours[i]!, theirs[i]!, 0.99999, `text ${i}`);
            } finally {
                await engine.dispose();
            }
        });
    }
});
