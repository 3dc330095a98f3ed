import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fromBase64 } from "../../src/core/vectors.js";
import { SAMPLE_TEXTS, cosine, norm, startTestServer, type TestServer } from "../helpers/testServer.js";

describe("OpenAI /v1/embeddings", () => {
    let server: TestServer;
    before(async () => {
        server = await startTestServer({
            models: [
                {
                    preset: "bert-tiny",
                    id: "bert-tiny",
                    aliases: ["text-embedding-3-small"],
                    contextSize: 64,
                    prompts: { query: "search_query: ", document: "search_document: ", code: "Represent this code: " },
                },
                { preset: "qwen3-tiny", id: "qwen3-tiny", contextSize: 64 },
            ],
        });
    });
    after(() => server.close());

    const embed = (body: object) => server.post("/v1/embeddings", body);

    it("accepts a string and reports usage", async () => {
        const res = await embed({ input: "hello world", model: "bert-tiny" });
        assert.equal(res.statusCode, 200, res.body);
        const body = res.json();
        assert.equal(body.object, "list");
        assert.equal(body.model, "bert-tiny");
        assert.equal(body.data.length, 1);
        assert.equal(body.data[0].object, "embedding");
        assert.equal(body.data[0].index, 0);
        assert.equal(body.data[0].embedding.length, 128);
        assert.ok(body.usage.prompt_tokens >= 3);
        assert.equal(body.usage.total_tokens, body.usage.prompt_tokens);
    });

    it("accepts an array of strings, in order", async () => {
        const res = await embed({ input: SAMPLE_TEXTS, model: "bert-tiny" });
        assert.equal(res.statusCode, 200, res.body);
        const data = res.json().data;
        assert.deepEqual(
            data.map((d: { index: number }) => d.index),
            SAMPLE_TEXTS.map((_, i) => i),
        );
        const single = (await embed({ input: SAMPLE_TEXTS[3], model: "bert-tiny" })).json().data[0].embedding;
        assert.ok(cosine(single, data[3].embedding) >= 0.9999);
    });

    it("routes by alias and defaults to the first model", async () => {
        const byAlias = await embed({ input: "x", model: "text-embedding-3-small" });
        assert.equal(byAlias.json().model, "bert-tiny");
        const noModel = await embed({ input: "x" });
        assert.equal(noModel.json().model, "bert-tiny");
        const qwen = await embed({ input: "x", model: "qwen3-tiny" });
        assert.equal(qwen.json().model, "qwen3-tiny");
    });

    it("base64 decodes to exactly the float encoding", async () => {
        const asFloat = (await embed({ input: SAMPLE_TEXTS.slice(0, 3), model: "bert-tiny", encoding_format: "float" })).json();
        const asB64 = (await embed({ input: SAMPLE_TEXTS.slice(0, 3), model: "bert-tiny", encoding_format: "base64" })).json();
        for (let i = 0; i < 3; i++) {
            assert.equal(typeof asB64.data[i].embedding, "string");
            const decoded = fromBase64(asB64.data[i].embedding);
            assert.equal(decoded.length, 128);
            const floats = Float32Array.from(asFloat.data[i].embedding as number[]);
            assert.deepEqual(decoded, floats, "float32 values must match bit for bit");
        }
    });

    it("token-id input equals the text it encodes", async () => {
        const handle = server.registry.resolve("bert-tiny");
        const ids = Array.from(await handle.engine!.tokenize("hello world", true));
        const fromIds = (await embed({ input: ids, model: "bert-tiny" })).json();
        const fromText = (await embed({ input: "hello world", model: "bert-tiny" })).json();
        assert.ok(cosine(fromIds.data[0].embedding, fromText.data[0].embedding) >= 0.99999);
        assert.equal(fromIds.usage.prompt_tokens, ids.length);
        const many = (await embed({ input: [ids, ids.slice(0, 3)], model: "bert-tiny" })).json();
        assert.equal(many.data.length, 2);
    });

    it("dimensions truncates and renormalises", async () => {
        const full = (await embed({ input: "matryoshka", model: "bert-tiny" })).json().data[0].embedding as number[];
        const cut = (await embed({ input: "matryoshka", model: "bert-tiny", dimensions: 32 })).json().data[0].embedding as number[];
        assert.equal(cut.length, 32);
        assert.ok(Math.abs(norm(cut) - 1) < 1e-5);
        assert.ok(cosine(cut, full.slice(0, 32)) > 0.99999);
        const tooMany = await embed({ input: "x", model: "bert-tiny", dimensions: 129 });
        assert.equal(tooMany.statusCode, 400);
        assert.equal(tooMany.json().error.param, "dimensions");
        assert.match(tooMany.json().error.message, /128/);
    });

    it("refuses an over-long input, naming its token count and the limit", async () => {
        const long = "word ".repeat(200);
        const res = await embed({ input: ["short", long], model: "bert-tiny" });
        assert.equal(res.statusCode, 413);
        const err = res.json().error;
        assert.equal(err.code, "input_too_long");
        assert.equal(err.param, "input[1]");
        assert.match(err.message, /\b20[0-9] tokens\b/);
        const limit = server.registry.resolve("bert-tiny").engine!.info.contextLength;
        assert.ok(limit <= 64);
        assert.match(err.message, new RegExp(`at most ${limit}\\b`));
    });

    it("truncate: true cuts to the context and keeps the special tokens", async () => {
        const long = SAMPLE_TEXTS[4]!.repeat(6);
        const res = await embed({ input: long, model: "bert-tiny", truncate: true });
        assert.equal(res.statusCode, 200, res.body);
        const handle = server.registry.resolve("bert-tiny");
        const engine = handle.engine!;
        const limit = engine.info.contextLength;
        assert.equal(res.json().usage.prompt_tokens, limit);
        const { prefix, suffix } = engine.specialTokens;
        const content = await engine.tokenize(long, false);
        const manual = [...prefix, ...content.subarray(0, limit - prefix.length - suffix.length), ...suffix];
        assert.ok(suffix.length > 0, "bert adds [SEP]");
        const viaIds = (await embed({ input: manual, model: "bert-tiny" })).json().data[0].embedding;
        assert.ok(cosine(viaIds, res.json().data[0].embedding) >= 0.99999);
    });

    it("truncate works for the decoder model and keeps its EOS last", async () => {
        const long = SAMPLE_TEXTS[4]!.repeat(6);
        const res = await embed({ input: long, model: "qwen3-tiny", truncate: true });
        assert.equal(res.statusCode, 200, res.body);
        const engine = server.registry.resolve("qwen3-tiny").engine!;
        assert.ok(engine.specialTokens.suffix.length > 0, "qwen3 embedding models append EOS");
    });

    it("input_type and prompt_name apply the model's prompts", async () => {
        const viaType = (await embed({ input: "what is rag?", model: "bert-tiny", input_type: "query" })).json().data[0].embedding;
        const manual = (await embed({ input: "search_query: what is rag?", model: "bert-tiny" })).json().data[0].embedding;
        const plain = (await embed({ input: "what is rag?", model: "bert-tiny" })).json().data[0].embedding;
        assert.ok(cosine(viaType, manual) >= 0.99999);
        assert.ok(cosine(viaType, plain) < 0.9999);
        const named = (await embed({ input: "x = 1", model: "bert-tiny", prompt_name: "code" })).json().data[0].embedding;
        const namedManual = (await embed({ input: "Represent this code: x = 1", model: "bert-tiny" })).json().data[0].embedding;
        assert.ok(cosine(named, namedManual) >= 0.99999);
        const unknown = await embed({ input: "x", model: "bert-tiny", prompt_name: "nope" });
        assert.equal(unknown.statusCode, 400);
        assert.equal(unknown.json().error.param, "prompt_name");
        assert.match(unknown.json().error.message, /code/);
    });

    it("unknown model is a 404 naming the available ones", async () => {
        const res = await embed({ input: "x", model: "gpt-9" });
        assert.equal(res.statusCode, 404);
        assert.equal(res.json().error.code, "model_not_found");
        assert.match(res.json().error.message, /bert-tiny/);
    });

    it("GET /v1/models lists every model", async () => {
        const res = await server.inject({ method: "GET", url: "/v1/models" });
        assert.equal(res.statusCode, 200);
        const body = res.json();
        assert.equal(body.object, "list");
        assert.deepEqual(
            body.data.map((m: { id: string }) => m.id),
            ["bert-tiny", "qwen3-tiny"],
        );
        assert.equal(body.data[0].object, "model");
        assert.equal(body.data[0].state, "ready");
        const one = await server.inject({ method: "GET", url: "/v1/models/qwen3-tiny" });
        assert.equal(one.json().id, "qwen3-tiny");
        assert.equal((await server.inject({ method: "GET", url: "/v1/models/nope" })).statusCode, 404);
    });
});
