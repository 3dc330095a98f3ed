import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ensureTestModel } from "../fixtures/testModels.js";
import { spawnServer } from "../helpers/spawnServer.js";
import { cosine, startTestServer, type TestServer } from "../helpers/testServer.js";

const ADMIN = "admin-key-0123456789";
const admin = { authorization: `Bearer ${ADMIN}` };
const TEXT = "hot swap must not drop a single request";

describe("hot swap under load", () => {
    let server: TestServer;
    let bertPath: string;
    let qwenPath: string;
    before(async () => {
        bertPath = await ensureTestModel("bert-tiny");
        qwenPath = await ensureTestModel("qwen3-tiny");
        server = await startTestServer({
            models: [
                { preset: "bert-tiny", id: "main" },
                { preset: "qwen3-tiny", id: "reference-qwen" },
            ],
            config: { auth: { adminKeys: [ADMIN] } },
        });
    });
    after(() => server.close());

    const embed = async (model: string) => {
        const res = await server.post("/v1/embeddings", { input: TEXT, model });
        return { status: res.statusCode, body: res.json() };
    };

    it("admin routes need the admin key", async () => {
        assert.equal((await server.inject({ method: "GET", url: "/admin/models" })).statusCode, 401);
        const list = await server.inject({ method: "GET", url: "/admin/models", headers: admin });
        assert.equal(list.statusCode, 200);
        assert.deepEqual(
            list.json().models.map((m: { id: string; state: string }) => [m.id, m.state]),
            [
                ["main", "ready"],
                ["reference-qwen", "ready"],
            ],
        );
    });

    it("replacing a model under steady load fails no request, and later responses come from the new model", async () => {
        const oldVector = (await embed("main")).body.data[0].embedding as number[];
        const newVector = (await embed("reference-qwen")).body.data[0].embedding as number[];
        assert.ok(cosine(oldVector, newVector) < 0.99, "the two models are distinguishable");

        let stop = false;
        let swappedAt = Infinity;
        const results: { startedAt: number; status: number; vector?: number[] }[] = [];
        const client = async () => {
            while (!stop) {
                const startedAt = performance.now();
                const { status, body } = await embed("main");
                results.push({ startedAt, status, vector: body.data?.[0]?.embedding });
            }
        };
        const clients = Array.from({ length: 6 }, client);
        await new Promise((r) => setTimeout(r, 300));
        const put = await server.inject({ method: "PUT", url: "/admin/models/main", headers: admin, payload: { path: qwenPath } });
        swappedAt = performance.now();
        assert.equal(put.statusCode, 200, put.body);
        assert.deepEqual(put.json(), { id: "main", replaced: true, state: "ready" });
        await new Promise((r) => setTimeout(r, 300));
        stop = true;
        await Promise.all(clients);

        assert.ok(results.length > 20, `steady load: ${results.length} requests`);
        assert.deepEqual(results.filter((r) => r.status !== 200).map((r) => r.status), [], "zero failed requests");
        let fromOld = 0;
        let fromNew = 0;
        for (const r of results) {
            const isOld = cosine(r.vector!, oldVector) >= 0.9999;
            const isNew = cosine(r.vector!, newVector) >= 0.9999;
            assert.ok(isOld || isNew, "every response comes from one of the two models");
            if (r.startedAt > swappedAt) assert.ok(isNew, "requests after the switch are served by the new model");
            if (isOld) fromOld++;
            else fromNew++;
        }
        assert.ok(fromOld > 0 && fromNew > 0, `old ${fromOld}, new ${fromNew}`);
        const list = (await server.inject({ method: "GET", url: "/admin/models", headers: admin })).json();
        assert.equal(list.models.find((m: { id: string }) => m.id === "main").path, qwenPath);
    });

    it("adds and removes a model at runtime", async () => {
        const put = await server.inject({ method: "PUT", url: "/admin/models/extra", headers: admin, payload: { path: bertPath, aliases: ["extra-alias"] } });
        assert.equal(put.statusCode, 200, put.body);
        assert.equal(put.json().replaced, false);
        assert.equal((await embed("extra-alias")).status, 200);
        const models = (await server.inject({ method: "GET", url: "/v1/models" })).json().data.map((m: { id: string }) => m.id);
        assert.deepEqual(models, ["main", "reference-qwen", "extra"]);
        const del = await server.inject({ method: "DELETE", url: "/admin/models/extra", headers: admin });
        assert.equal(del.statusCode, 200);
        assert.equal((await embed("extra")).status, 404);
    });

    it("a replacement that fails to load leaves the old model serving", async () => {
        const before = (await embed("main")).body.data[0].embedding;
        const bad = await server.inject({ method: "PUT", url: "/admin/models/main", headers: admin, payload: { path: "/nonexistent/model.gguf" } });
        assert.ok(bad.statusCode >= 400, bad.body);
        assert.match(bad.json().error.message, /nonexistent|does not exist|not found/i);
        const after = await embed("main");
        assert.equal(after.status, 200);
        assert.ok(cosine(after.body.data[0].embedding, before) >= 0.9999);
    });

    it("bad admin bodies name the field", async () => {
        const res = await server.inject({ method: "PUT", url: "/admin/models/x", headers: admin, payload: { path: bertPath, contextSize: "big" } });
        assert.equal(res.statusCode, 400);
        assert.equal(res.json().error.param, "contextSize");
        const unknown = await server.inject({ method: "DELETE", url: "/admin/models/nope", headers: admin });
        assert.equal(unknown.statusCode, 404);
    });
});

describe("memory budget, lazy loading and idle unload", () => {
    it("refuses a model that would pass the budget, giving both numbers", async () => {
        const server = await startTestServer({
            models: [{ preset: "bert-tiny", id: "small" }],
            config: { auth: { adminKeys: [ADMIN] }, limits: { modelMemoryFraction: 0.01 } },
            noLoad: true,
        });
        try {
            // 1% of this machine's RAM is far more than bert-tiny needs; qwen3-0.6b at 16 x 8k context is not.
            await server.loadModels();
            const big = await ensureTestModel("qwen3-0.6b-bench");
            const res = await server.inject({ method: "PUT", url: "/admin/models/big", headers: admin, payload: { path: big, contextSize: 8192, batchSize: 8192, maxSequences: 64 } });
            assert.equal(res.statusCode, 507, res.body);
            assert.equal(res.json().error.code, "insufficient_memory");
            assert.match(res.json().error.message, /needs about \d+\.\d\d GiB but only \d+\.\d\d GiB of the \d+\.\d\d GiB budget/);
            assert.equal((await server.post("/v1/embeddings", { input: "x", model: "small" })).statusCode, 200);
        } finally {
            await server.close();
        }
    });

    it("a lazy model loads on first use; an idle one unloads and reloads", async () => {
        const server = await startTestServer({ models: [{ preset: "bert-tiny", id: "lazy", lazy: true, idleUnloadSeconds: 1 }] });
        try {
            const state = async () => (await server.inject({ method: "GET", url: "/v1/models" })).json().data[0].state;
            assert.equal(await state(), "unloaded");
            assert.equal((await server.inject({ method: "GET", url: "/health" })).statusCode, 200, "lazy models don't hold health back");
            assert.equal((await server.post("/v1/embeddings", { input: "wake up" })).statusCode, 200);
            assert.equal(await state(), "ready");
            await new Promise((r) => setTimeout(r, 2500));
            assert.equal(await state(), "unloaded");
            assert.equal((await server.post("/v1/embeddings", { input: "again" })).statusCode, 200);
            assert.equal(await state(), "ready");
        } finally {
            await server.close();
        }
    });
});

describe("SIGHUP", () => {
    it("reloads the config file and swaps models without a restart", async () => {
        const dir = mkdtempSync(join(tmpdir(), "es-sighup-"));
        const config = join(dir, "config.yaml");
        const bert = await ensureTestModel("bert-tiny");
        const qwen = await ensureTestModel("qwen3-tiny");
        writeFileSync(config, `models:\n  - id: a\n    path: ${bert}\n`);
        const server = await spawnServer(["--config", config]);
        try {
            const ids = async () => ((await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] }).data.map((m) => m.id);
            assert.deepEqual(await ids(), ["a"]);
            writeFileSync(config, `models:\n  - id: b\n    path: ${qwen}\n  - id: a\n    path: ${bert}\n`);
            server.child.kill("SIGHUP");
            await server.waitForLog("SIGHUP: models reloaded", 30_000);
            assert.deepEqual(await ids(), ["b", "a"]);
            writeFileSync(config, "models: [not valid");
            server.child.kill("SIGHUP");
            await server.waitForLog("SIGHUP: configuration rejected; keeping the current models");
            assert.deepEqual(await ids(), ["b", "a"]);
        } finally {
            assert.equal(await server.stop(), 0);
        }
    });
});
