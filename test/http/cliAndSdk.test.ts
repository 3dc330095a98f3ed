import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { ensureTestModel } from "../fixtures/testModels.js";
import { freePort } from "../../bench/lib.js";
import { BIN, spawnServer, type SpawnedServer } from "../helpers/spawnServer.js";
import { cosine } from "../helpers/testServer.js";

const KEY = "test-key-0123456789";

describe("embedding-server CLI + official openai SDK", () => {
    let server: SpawnedServer;
    before(async () => {
        const model = await ensureTestModel("bert-tiny");
        server = await spawnServer(["--model", model, "--api-key", KEY]);
    });
    after(() => server?.stop());

    it("--help and --version work", () => {
        const help = spawnSync(process.execPath, [BIN, "serve", "--help"], { encoding: "utf8" });
        assert.equal(help.status, 0);
        assert.match(help.stdout, /--model/);
        assert.match(help.stdout, /--api-key/);
        assert.match(help.stdout, /EMBEDDING_SERVER_MODEL_CONTEXT_SIZE/);
        const version = spawnSync(process.execPath, [BIN, "--version"], { encoding: "utf8" });
        assert.equal(version.status, 0);
        assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+$/);
    });

    it("a bad flag value stops start-up naming key and value", () => {
        const res = spawnSync(process.execPath, [BIN, "serve", "--model", "x.gguf", "--port", "70000"], { encoding: "utf8" });
        assert.equal(res.status, 2);
        assert.match(res.stderr, /server\.port/);
        assert.match(res.stderr, /70000/);
    });

    it("with no model and no network, serve names the default model and how to pass a local file", async () => {
        const closedPort = await freePort();
        const res = spawnSync(process.execPath, [BIN, "serve", "--port", "0"], {
            encoding: "utf8",
            // Nothing listens on that loopback port, so the hub is unreachable at once, as offline.
            env: { ...process.env, HF_ENDPOINT: `http://127.0.0.1:${closedPort}`, EMBEDDING_SERVER_CACHE_DIR: mkdtempSync(join(tmpdir(), "es-cache-")) },
            timeout: 60_000,
        });
        assert.equal(res.status, 1);
        const out = res.stdout + res.stderr;
        assert.match(out, /Qwen\/Qwen3-Embedding-0\.6B-GGUF/);
        assert.match(out, /--model/);
    });

    it("the SDK gets vectors; its default base64 and float give the same numbers", async () => {
        const client = new OpenAI({ apiKey: KEY, baseURL: `${server.url}/v1` });
        const texts = ["The quick brown fox", "jumps over the lazy dog", "hello"];
        const models = await client.models.list();
        assert.equal(models.data.length, 1);
        const model = models.data[0]!.id;
        assert.match(model, /^bert-tiny/, "the id defaults to the file name");
        const viaDefault = await client.embeddings.create({ model, input: texts });
        const viaFloat = await client.embeddings.create({ model: viaDefault.model, input: texts, encoding_format: "float" });
        assert.equal(viaDefault.data.length, 3);
        for (let i = 0; i < 3; i++) {
            const a = viaDefault.data[i]!.embedding;
            const b = viaFloat.data[i]!.embedding;
            assert.equal(a.length, 128);
            assert.deepEqual(Float32Array.from(a), Float32Array.from(b));
        }
        assert.ok(viaDefault.usage.prompt_tokens > 0);
        assert.ok(cosine(viaDefault.data[0]!.embedding, viaDefault.data[1]!.embedding) < 0.99);
        const dims = await client.embeddings.create({ model: viaDefault.model, input: "x", dimensions: 64 });
        assert.equal(dims.data[0]!.embedding.length, 64);
        assert.equal(viaDefault.model, model);
    });

    it("the SDK surfaces our errors as its typed errors", async () => {
        const bad = new OpenAI({ apiKey: "wrong-key-000000", baseURL: `${server.url}/v1`, maxRetries: 0 });
        await assert.rejects(bad.embeddings.create({ model: "x", input: "x" }), (err: unknown) => {
            assert.ok(err instanceof OpenAI.AuthenticationError);
            return true;
        });
        const client = new OpenAI({ apiKey: KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
        await assert.rejects(client.embeddings.create({ model: "no-such-model", input: "x" }), (err: unknown) => {
            assert.ok(err instanceof OpenAI.NotFoundError);
            return true;
        });
    });

    it("every route but /health needs the key; Bearer and x-api-key both work", async () => {
        assert.equal((await fetch(`${server.url}/health`)).status, 200);
        for (const path of ["/info", "/v1/models", "/metrics", "/docs", "/openapi.json"]) {
            assert.equal((await fetch(`${server.url}${path}`)).status, 401, path);
        }
        const res = await fetch(`${server.url}/embed`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: "x" }) });
        assert.equal(res.status, 401);
        const body = (await res.json()) as { error: { type: string; code: string } };
        assert.equal(body.error.type, "authentication_error");
        const ok1 = await fetch(`${server.url}/embed`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` }, body: JSON.stringify({ text: "x" }) });
        assert.equal(ok1.status, 200);
        const ok2 = await fetch(`${server.url}/embed`, { method: "POST", headers: { "content-type": "application/json", "x-api-key": KEY }, body: JSON.stringify({ text: "x" }) });
        assert.equal(ok2.status, 200);
    });

    it("the key never appears in the logs", () => {
        const all = JSON.stringify(server.logs) + server.stderr.join("\n");
        assert.ok(!all.includes(KEY), "API key leaked into logs");
        assert.ok(server.logs.some((l) => l.msg === "request completed" && typeof l.key === "string"), "requests are logged with a key hash");
    });

    it("SIGTERM exits 0", async () => {
        const code = await server.stop("SIGTERM");
        assert.equal(code, 0);
    });
});
