import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LlamaCppEngine } from "../../src/engine/llamaCppEngine.js";
import { FaultyEngine } from "../helpers/faultyEngine.js";
import { cosine, startTestServer, type TestServer } from "../helpers/testServer.js";

const KEY = "api-key-aaaaaaaaaaaa";
const KEY2 = "api-key-bbbbbbbbbbbb";
const ADMIN = "admin-key-cccccccccccc";
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

describe("authentication", () => {
    let server: TestServer;
    before(async () => {
        server = await startTestServer({ config: { auth: { apiKeys: [KEY, KEY2], adminKeys: [ADMIN] } } });
    });
    after(() => server.close());

    it("401 with a JSON error on every route but /health", async () => {
        for (const [method, url] of [
            ["POST", "/embed"],
            ["POST", "/embed/batch"],
            ["POST", "/similarity"],
            ["POST", "/v1/embeddings"],
            ["GET", "/v1/models"],
            ["GET", "/info"],
            ["GET", "/metrics"],
            ["GET", "/openapi.json"],
            ["GET", "/docs"],
        ] as const) {
            const res = await server.inject({ method, url, payload: method === "POST" ? { input: "a", text: "a" } : undefined });
            assert.equal(res.statusCode, 401, `${method} ${url}`);
            assert.equal(res.json().error.type, "authentication_error");
        }
        assert.equal((await server.inject({ method: "GET", url: "/health" })).statusCode, 200);
    });

    it("a wrong key is 401 and its value is never echoed", async () => {
        const res = await server.post("/v1/embeddings", { input: "a" }, auth("wrong-key-zzzzzzzzz"));
        assert.equal(res.statusCode, 401);
        assert.doesNotMatch(res.body, /wrong-key/);
        assert.equal(res.json().error.code, "invalid_api_key");
    });

    it("accepts Bearer and x-api-key, any configured key, and admin keys", async () => {
        assert.equal((await server.post("/v1/embeddings", { input: "a" }, auth(KEY))).statusCode, 200);
        assert.equal((await server.post("/v1/embeddings", { input: "a" }, auth(KEY2))).statusCode, 200);
        assert.equal((await server.post("/v1/embeddings", { input: "a" }, { "x-api-key": KEY })).statusCode, 200);
        assert.equal((await server.post("/v1/embeddings", { input: "a" }, auth(ADMIN))).statusCode, 200);
        assert.equal((await server.post("/v1/embeddings", { input: "a" }, { authorization: KEY })).statusCode, 401, "a bare key without Bearer");
    });

    it("metrics never contain a key", async () => {
        const res = await server.inject({ method: "GET", url: "/metrics", headers: auth(KEY) });
        assert.equal(res.statusCode, 200);
        for (const k of [KEY, KEY2, ADMIN]) assert.ok(!res.body.includes(k));
    });
});

describe("metrics", () => {
    let server: TestServer;
    before(async () => {
        server = await startTestServer({ config: { metrics: { public: true }, auth: { apiKeys: [KEY] } } });
    });
    after(() => server.close());

    it("exposes request, token, queue, batch, stage, load and process series", async () => {
        await server.post("/v1/embeddings", { input: ["one", "two", "three"] }, auth(KEY));
        await server.post("/embed", { text: "" }, auth(KEY));
        const res = await server.inject({ method: "GET", url: "/metrics" });
        assert.equal(res.statusCode, 200, "metrics.public serves without a key");
        assert.match(String(res.headers["content-type"]), /text\/plain/);
        const text = res.body;
        for (const pattern of [
            /embedding_http_requests_total\{route="\/v1\/embeddings",method="POST",status="200"\} 1/,
            /embedding_http_requests_total\{route="\/embed",method="POST",status="400"\} 1/,
            /embedding_http_request_duration_seconds_bucket\{.*route="\/v1\/embeddings"/,
            /embedding_inputs_total\{model="bert-tiny"\} 3/,
            /embedding_tokens_total\{model="bert-tiny"\} \d+/,
            /embedding_queue_depth\{model="bert-tiny"\} 0/,
            /embedding_batch_sequences_bucket/,
            /embedding_batch_tokens_bucket/,
            /embedding_tokenization_duration_seconds_count\{model="bert-tiny"\} [1-9]/,
            /embedding_queue_duration_seconds_count\{model="bert-tiny"\} [1-9]/,
            /embedding_inference_duration_seconds_count\{model="bert-tiny"\} [1-9]/,
            /embedding_model_load_seconds\{model="bert-tiny"\} [0-9.]+/,
            /embedding_model_state\{model="bert-tiny",state="ready"\} 1/,
            /embedding_errors_total\{code="invalid_request"\} 1/,
            /process_resident_memory_bytes \d+/,
            /nodejs_eventloop_lag_seconds/,
        ]) {
            assert.match(text, pattern);
        }
    });
});

describe("rate limits", () => {
    let server: TestServer;
    before(async () => {
        server = await startTestServer({
            config: { auth: { apiKeys: [KEY, KEY2] }, rateLimit: { enabled: true, requestsPerMinute: 3, tokensPerMinute: 1000 } },
        });
    });
    after(() => server.close());

    it("429 with Retry-After and RateLimit headers past requests per minute, per key", async () => {
        for (let i = 0; i < 3; i++) {
            const ok = await server.post("/v1/embeddings", { input: "a" }, auth(KEY));
            assert.equal(ok.statusCode, 200);
            assert.equal(ok.headers["ratelimit-limit"], "3");
            assert.equal(ok.headers["ratelimit-remaining"], String(2 - i));
        }
        const limited = await server.post("/v1/embeddings", { input: "a" }, auth(KEY));
        assert.equal(limited.statusCode, 429);
        assert.equal(limited.json().error.code, "rate_limit_exceeded");
        assert.equal(limited.json().error.type, "rate_limit_error");
        assert.match(limited.json().error.message, /3 requests per minute/);
        assert.ok(Number(limited.headers["retry-after"]) >= 1);
        assert.equal(limited.headers["ratelimit-remaining"], "0");
        assert.ok(limited.headers["ratelimit-reset"] !== undefined);
        // Another key has its own budget; /health is never limited.
        assert.equal((await server.post("/v1/embeddings", { input: "a" }, auth(KEY2))).statusCode, 200);
        for (let i = 0; i < 5; i++) assert.equal((await server.inject({ method: "GET", url: "/health" })).statusCode, 200);
    });

    it("429 past tokens per minute, naming the limit", async () => {
        const big = Array.from({ length: 150 }, () => "some words to count as tokens here");
        const res = await server.post("/v1/embeddings", { input: big }, auth(KEY2));
        assert.equal(res.statusCode, 429, res.body);
        assert.match(res.json().error.message, /1000 tokens per minute/);
        assert.ok(Number(res.headers["retry-after"]) >= 1);
    });
});

describe("backpressure, timeouts and engine faults", () => {
    let server: TestServer;
    let faulty!: FaultyEngine;
    before(async () => {
        server = await startTestServer({
            config: { limits: { maxQueuedTokens: 200 }, server: { requestTimeoutMs: 3000 } },
            loader: async (model) => (faulty = new FaultyEngine(await LlamaCppEngine.create({ modelPath: model.path }))),
        });
    });
    after(() => server.close());

    it("past the queued-token budget new work gets a fast 429; nothing is lost or duplicated", async () => {
        faulty.delayMs = 150;
        const texts = Array.from({ length: 40 }, (_, i) => `request number ${i} with a few more words to make tokens`);
        const reference = new Map<string, number[]>();
        faulty.delayMs = 0;
        for (const t of texts.slice(0, 5)) reference.set(t, (await server.post("/embed", { text: t })).json().embedding);
        faulty.delayMs = 150;
        const before = faulty.batches.flat().length;
        const responses = await Promise.all(texts.map((text) => server.post("/embed", { text })));
        const ok = responses.filter((r) => r.statusCode === 200);
        const shed = responses.filter((r) => r.statusCode === 429);
        assert.equal(ok.length + shed.length, texts.length, "every request got an answer");
        assert.ok(shed.length > 0, "some requests were shed");
        assert.ok(ok.length > 0, "some requests were served");
        for (const r of shed) {
            assert.equal(r.json().error.code, "server_overloaded");
            assert.ok(Number(r.headers["retry-after"]) >= 1);
        }
        // Exactly the accepted requests reached the engine, each once.
        assert.equal(faulty.batches.flat().length - before, ok.length);
        responses.forEach((r, i) => {
            const ref = reference.get(texts[i]!);
            if (r.statusCode === 200 && ref) assert.ok(cosine(ref, r.json().embedding) >= 0.9999);
        });
        faulty.delayMs = 0;
    });

    it("a request over server.requestTimeoutMs gets 504 and its work is dropped", async () => {
        faulty.delayMs = 3500;
        const res = await server.post("/embed", { text: "slow" });
        assert.equal(res.statusCode, 504);
        assert.equal(res.json().error.code, "request_timeout");
        assert.match(res.json().error.message, /3000 ms/);
        faulty.delayMs = 0;
        await new Promise((r) => setTimeout(r, 600));
        assert.equal((await server.post("/embed", { text: "fast again" })).statusCode, 200);
    });

    it("an engine failure is a 500 that hides internals, and the server recovers", async () => {
        faulty.failNext = 1;
        const res = await server.post("/embed", { text: "boom" });
        assert.equal(res.statusCode, 500);
        assert.equal(res.json().error.code, "internal_error");
        assert.doesNotMatch(res.body, /secret|gguf|decode|-3/);
        assert.equal((await server.post("/embed", { text: "fine" })).statusCode, 200);
    });
});

describe("client disconnect", () => {
    let server: TestServer;
    let faulty!: FaultyEngine;
    let url: string;
    before(async () => {
        server = await startTestServer({ loader: async (model) => (faulty = new FaultyEngine(await LlamaCppEngine.create({ modelPath: model.path }))) });
        url = await server.app.listen({ host: "127.0.0.1", port: 0 });
    });
    after(() => server.close());

    it("cancels the client's queued work before decode", async () => {
        faulty.delayMs = 400;
        const first = fetch(`${url}/embed`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: "occupies the engine" }) });
        await new Promise((r) => setTimeout(r, 100));
        const controller = new AbortController();
        const marker = "this request is abandoned by its client";
        const abandoned = fetch(`${url}/embed`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ text: marker }),
            signal: controller.signal,
        }).catch((e: Error) => e);
        await new Promise((r) => setTimeout(r, 100));
        controller.abort();
        assert.ok((await abandoned) instanceof Error);
        assert.equal((await first).status, 200);
        faulty.delayMs = 0;
        await new Promise((r) => setTimeout(r, 100));
        const markerTokens = await faulty.tokenize(marker, true);
        const reached = faulty.batches.flat().some((s) => s.length === markerTokens.length && s.every((t, i) => t === markerTokens[i]));
        assert.equal(reached, false, "the abandoned request never reached the engine");
    });
});
