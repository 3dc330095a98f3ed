import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Batcher } from "../../src/core/batcher.js";
import { createEngine } from "../../src/engine/createEngine.js";
import type { Engine } from "../../src/engine/engine.js";
import { EnginePool } from "../../src/engine/enginePool.js";
import { LlamaCppEngine } from "../../src/engine/llamaCppEngine.js";
import { ensureTestModel } from "../fixtures/testModels.js";
import { FaultyEngine } from "../helpers/faultyEngine.js";
import { SAMPLE_TEXTS, cosine, startTestServer } from "../helpers/testServer.js";

describe("dynamic batcher", () => {
    let engine: Engine;
    before(async () => {
        engine = await createEngine({ modelPath: await ensureTestModel("bert-tiny"), engine: "auto" });
    });
    after(() => engine.dispose());

    it("16 concurrent single-text requests run as one or two engine calls", async () => {
        const server = await startTestServer({
            loader: async (model) => {
                const faulty = new FaultyEngine(await createEngine({ modelPath: model.path, engine: "auto" }));
                faulty.delayMs = 30; // a realistic decode time, so requests arriving meanwhile queue up
                return faulty;
            },
        });
        try {
            const faulty = server.registry.resolve().engine as FaultyEngine;
            const before = faulty.batches.length;
            const texts = Array.from({ length: 16 }, (_, i) => `concurrent request ${i}`);
            const responses = await Promise.all(texts.map((text) => server.post("/embed", { text })));
            assert.ok(responses.every((r) => r.statusCode === 200));
            const calls = faulty.batches.length - before;
            assert.ok(calls <= 2, `${calls} engine calls for 16 requests`);
            assert.equal(faulty.batches.slice(before).flat().length, 16);
        } finally {
            await server.close();
        }
    });

    it("fills batches up to the token budget and sequence cap; what does not fit waits; the head never starves", async () => {
        const recording = new FaultyEngine(engine);
        recording.delayMs = 20;
        const batcher = new Batcher(recording, { maxBatchTokens: 40, maxBatchSequences: 3, maxQueuedTokens: 10_000 });
        const long = await engine.tokenize("word ".repeat(60), true); // longer than the budget alone
        const short = await Promise.all(SAMPLE_TEXTS.slice(0, 6).map((t) => engine.tokenize(t, true)));
        const results = await Promise.all([batcher.submit([short[0]!]), batcher.submit([long]), ...short.slice(1).map((s) => batcher.submit([s]))]);
        assert.equal(results.length, 7);
        for (const batch of recording.batches) {
            const tokens = batch.reduce((n, s) => n + s.length, 0);
            assert.ok(batch.length <= 3, `batch of ${batch.length} sequences`);
            assert.ok(batch.length === 1 || tokens <= 40, `batch of ${tokens} tokens`);
        }
        assert.ok(recording.batches.some((b) => b.length === 1 && b[0]!.length === long.length), "the over-budget input ran alone");
        assert.equal(recording.batches.flat().length, 7, "every sequence ran exactly once");
    });

    it("a batch gives the same vectors as each input alone, for mixed lengths on both architectures", async () => {
        for (const preset of ["bert-tiny", "qwen3-tiny"] as const) {
            for (const kind of ["auto", "node-llama-cpp"] as const) {
                const e = kind === "auto" ? await createEngine({ modelPath: await ensureTestModel(preset), engine: "auto" }) : await LlamaCppEngine.create({ modelPath: await ensureTestModel(preset) });
                try {
                    const seqs = await Promise.all([...SAMPLE_TEXTS, SAMPLE_TEXTS[4]!.repeat(3)].map((t) => e.tokenize(t, true)));
                    const batched = await e.embed(seqs);
                    for (let i = 0; i < seqs.length; i++) {
                        const [alone] = await e.embed([seqs[i]!]);
                        const c = cosine(alone!, batched[i]!);
                        assert.ok(c >= 0.9999, `${preset}/${e.backend.engine} input ${i}: cosine ${c}`);
                    }
                } finally {
                    await e.dispose();
                }
            }
        }
    });

    it("an engine pool runs as many batches at once as it has copies, with the same vectors", async () => {
        const path = await ensureTestModel("bert-tiny");
        const pool = await createEngine({ modelPath: path, engine: "auto", replicas: 2, threads: 1 });
        try {
            assert.equal(pool.concurrency, 2);
            assert.equal(pool.backend.threads, 2);
            const seqs = await Promise.all(SAMPLE_TEXTS.map((t) => pool.tokenize(t, true)));
            const fromPool = await pool.embed(seqs);
            const single = await engine.embed(seqs);
            seqs.forEach((_, i) => assert.ok(cosine(fromPool[i]!, single[i]!) >= 0.9999));

            const slow = new EnginePool([new FaultyEngine(engine), new FaultyEngine(engine)]);
            for (const e of (slow as unknown as { engines: FaultyEngine[] }).engines) e.delayMs = 150;
            const batcher = new Batcher(slow, { maxBatchTokens: 4096, maxBatchSequences: 2, maxQueuedTokens: 100_000, maxInFlight: slow.concurrency });
            const started = performance.now();
            await Promise.all([batcher.submit(seqs.slice(0, 2)), batcher.submit(seqs.slice(2, 4))]);
            const elapsed = performance.now() - started;
            assert.ok(elapsed < 280, `two batches on two copies ran in parallel (${elapsed.toFixed(0)} ms for 2 x 150 ms)`);
        } finally {
            await pool.dispose();
        }
    });

    it("a cancelled request is dropped before decode and frees its queued tokens", async () => {
        const recording = new FaultyEngine(engine);
        recording.delayMs = 50;
        const batcher = new Batcher(recording, { maxBatchTokens: 4096, maxBatchSequences: 8, maxQueuedTokens: 10_000 });
        const first = batcher.submit([await engine.tokenize("running first", true)]);
        await new Promise((r) => setTimeout(r, 5));
        const controller = new AbortController();
        const doomed = await engine.tokenize("cancelled while queued", true);
        const cancelled = batcher.submit([doomed], controller.signal);
        controller.abort(new Error("client went away"));
        await assert.rejects(cancelled, /client went away/);
        assert.equal(batcher.pendingTokens, 0);
        await first;
        await new Promise((r) => setTimeout(r, 80));
        assert.ok(!recording.batches.flat().some((s) => s === doomed), "the cancelled sequence never reached the engine");
    });
});
