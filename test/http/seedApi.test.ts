import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SAMPLE_TEXTS, cosine, norm, startTestServer, type TestServer } from "../helpers/testServer.js";

for (const preset of ["bert-tiny", "qwen3-tiny"] as const) {
    describe(`seed API on ${preset}`, () => {
        let server: TestServer;
        before(async () => {
            server = await startTestServer({ models: [{ preset, id: preset }] });
        });
        after(() => server.close());

        it("POST /embed returns a normalised vector with its token count", async () => {
            const res = await server.post("/embed", { text: "hello world" });
            assert.equal(res.statusCode, 200, res.body);
            const body = res.json();
            assert.equal(body.model, preset);
            assert.equal(body.dimensions, 128);
            assert.equal(body.embedding.length, 128);
            assert.ok(body.tokens >= 3, `tokens ${body.tokens}`);
            assert.ok(Math.abs(norm(body.embedding) - 1) < 1e-5);
            assert.ok(body.embedding.every(Number.isFinite));
        });

        it("normalize: false returns the raw vector, same direction", async () => {
            const a = (await server.post("/embed", { text: "hello world" })).json();
            const b = (await server.post("/embed", { text: "hello world", normalize: false })).json();
            assert.ok(Math.abs(norm(b.embedding) - 1) > 1e-3, "raw vector should not be unit length");
            assert.ok(cosine(a.embedding, b.embedding) > 0.99999);
        });

        it("POST /embed/batch keeps input order and equals each input alone", async () => {
            const res = await server.post("/embed/batch", { texts: SAMPLE_TEXTS });
            assert.equal(res.statusCode, 200, res.body);
            const body = res.json();
            assert.equal(body.embeddings.length, SAMPLE_TEXTS.length);
            assert.equal(body.dimensions, 128);
            let tokens = 0;
            for (const [i, text] of SAMPLE_TEXTS.entries()) {
                const single = (await server.post("/embed", { text })).json();
                tokens += single.tokens;
                const c = cosine(single.embedding, body.embeddings[i]);
                assert.ok(c >= 0.9999, `input ${i}: cosine ${c}`);
            }
            assert.equal(body.tokens, tokens);
        });

        it("different texts give clearly different vectors", async () => {
            const body = (await server.post("/embed/batch", { texts: [SAMPLE_TEXTS[0], SAMPLE_TEXTS[4]] })).json();
            assert.ok(cosine(body.embeddings[0], body.embeddings[1]) < 0.99);
        });

        it("concurrent requests give the same vectors as sequential ones", async () => {
            const sequential: number[][] = [];
            for (const text of SAMPLE_TEXTS) sequential.push((await server.post("/embed", { text })).json().embedding);
            const concurrent = await Promise.all(SAMPLE_TEXTS.map((text) => server.post("/embed", { text })));
            concurrent.forEach((res, i) => {
                assert.equal(res.statusCode, 200);
                const c = cosine(res.json().embedding, sequential[i]!);
                assert.ok(c >= 0.9999, `input ${i}: cosine ${c}`);
            });
        });

        it("POST /similarity {text1, text2} returns the cosine of the two embeddings", async () => {
            const res = await server.post("/similarity", { text1: SAMPLE_TEXTS[0], text2: SAMPLE_TEXTS[1] });
            assert.equal(res.statusCode, 200, res.body);
            const { similarity } = res.json();
            const e = (await server.post("/embed/batch", { texts: [SAMPLE_TEXTS[0], SAMPLE_TEXTS[1]] })).json().embeddings;
            assert.ok(Math.abs(similarity - cosine(e[0], e[1])) < 1e-5);
            const same = (await server.post("/similarity", { text1: "same text", text2: "same text" })).json();
            assert.ok(same.similarity > 0.99999);
        });

        it("POST /similarity {query, documents} ranks documents best first with indices", async () => {
            const documents = [SAMPLE_TEXTS[2], "Paris is the capital of France.", SAMPLE_TEXTS[4]];
            const res = await server.post("/similarity", { query: "Paris is the capital of France.", documents });
            assert.equal(res.statusCode, 200, res.body);
            const { results } = res.json();
            assert.equal(results.length, 3);
            assert.equal(results[0].index, 1, "the identical document ranks first");
            assert.ok(results[0].score > 0.9999);
            for (let i = 1; i < results.length; i++) assert.ok(results[i - 1].score >= results[i].score);
            assert.deepEqual([...results.map((r: { index: number }) => r.index)].sort(), [0, 1, 2]);
        });

        it("POST /similarity with neither form names the fields", async () => {
            const res = await server.post("/similarity", { text1: "only one" });
            assert.equal(res.statusCode, 400);
            assert.equal(res.json().error.param, "text2");
        });

        it("GET /info describes the model and backend", async () => {
            const res = await server.inject({ method: "GET", url: "/info" });
            assert.equal(res.statusCode, 200);
            const body = res.json();
            assert.match(body.version, /^\d+\.\d+\.\d+/);
            const m = body.models[0];
            assert.equal(m.id, preset);
            assert.equal(m.state, "ready");
            assert.equal(m.architecture, preset === "bert-tiny" ? "bert" : "qwen3");
            assert.equal(m.dimensions, 128);
            assert.equal(m.pooling, preset === "bert-tiny" ? "mean" : "last");
            assert.ok(m.context_length > 100);
            assert.equal(m.quantization, "F32");
            assert.ok(m.file_size_bytes > 0);
            assert.ok(m.parameters > 0);
            assert.ok(["cpu", "metal", "cuda", "vulkan"].includes(m.backend.gpu));
            assert.ok(m.backend.threads >= 1);
            assert.ok(["native", "node-llama-cpp"].includes(m.backend.engine));
            // replicas: auto gives a model this small two engine copies on the native CPU engine
            if (m.backend.engine === "native" && m.backend.gpu === "cpu" && m.backend.threads >= 2) {
                assert.match(m.backend.details, /^2 replicas x \d+ thread/);
            }
        });

        it("GET /health is 200 once loaded", async () => {
            const res = await server.inject({ method: "GET", url: "/health" });
            assert.equal(res.statusCode, 200);
            assert.equal(res.json().status, "ok");
        });
    });
}

describe("health while loading", () => {
    it("is 503 until the model is loaded, then 200; a request sent meanwhile waits for the model", async () => {
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        const { LlamaCppEngine } = await import("../../src/engine/llamaCppEngine.js");
        const server = await startTestServer({
            noLoad: true,
            loader: async (model) => {
                await gate;
                return LlamaCppEngine.create({ modelPath: model.path });
            },
        });
        try {
            const loading = server.loadModels();
            const during = await server.inject({ method: "GET", url: "/health" });
            assert.equal(during.statusCode, 503);
            assert.equal(during.json().status, "loading");
            let answered = false;
            const early = server.post("/embed", { text: "early" }).then((r) => ((answered = true), r));
            await new Promise((r) => setTimeout(r, 100));
            assert.equal(answered, false, "the request waits while the model loads");
            release();
            await loading;
            assert.equal((await early).statusCode, 200);
            assert.equal((await server.inject({ method: "GET", url: "/health" })).statusCode, 200);
        } finally {
            release();
            await server.close();
        }
    });
});
