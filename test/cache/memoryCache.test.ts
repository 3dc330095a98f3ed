import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CacheKeyBuilder, hashKey, type CacheKeyParts } from "../../src/cache/cacheKey.js";
import { decodeEntry, encodeEntry } from "../../src/cache/redisVectorStore.js";
import { fromBase64 } from "../../src/core/vectors.js";
import type { FaultyEngine } from "../helpers/faultyEngine.js";
import { norm, startTestServer, type TestServer } from "../helpers/testServer.js";
import { countingLoader, embedBase64, engineSequences, metrics, metricValue } from "./cacheTestKit.js";

const PARTS: CacheKeyParts = {
    model: "m",
    fileIdentity: "f",
    runtime: "native/cpu",
    pooling: "mean",
    contextLength: 512,
    prefix: "",
    truncate: false,
    normalize: true,
    dimensions: 128,
};

describe("cache keys and encoding", () => {
    it("every part of the key changes it; hashed keys are bounded", () => {
        const base = new CacheKeyBuilder(PARTS).key("hello");
        const variants: Partial<CacheKeyParts>[] = [
            { model: "m2" },
            { fileIdentity: "f2" },
            { runtime: "node-llama-cpp/cpu" },
            { pooling: "cls" },
            { contextLength: 256 },
            { prefix: "query: " },
            { truncate: true },
            { normalize: false },
            { dimensions: 64 },
        ];
        const seen = new Set([base]);
        const hashes = new Set([hashKey(base)]);
        for (const v of variants) {
            const key = new CacheKeyBuilder({ ...PARTS, ...v }).key("hello");
            assert.ok(!seen.has(key), `changing ${Object.keys(v)[0]} changes the key`);
            assert.ok(!hashes.has(hashKey(key)), `and its hash`);
            seen.add(key);
            hashes.add(hashKey(key));
        }
        const b = new CacheKeyBuilder(PARTS);
        // Prefix and input are separate parts: moving text between them changes the key.
        assert.notEqual(new CacheKeyBuilder({ ...PARTS, prefix: "a" }).key("b"), b.key("ab"));
        assert.notEqual(new CacheKeyBuilder({ ...PARTS, prefix: 'a"' }).key("b"), new CacheKeyBuilder({ ...PARTS, prefix: "a" }).key('"b'));
        assert.notEqual(b.key("1,2"), b.key([1, 2]), "a text never equals a token list");
        assert.notEqual(b.key([1, 2]), b.key([12]));
        assert.notEqual(hashKey(b.key("a\uD800")), hashKey(b.key("a\uFFFD")), "an unpaired surrogate is not its UTF-8 replacement");
        assert.equal(hashKey(b.key("x".repeat(100_000))).length, 43);
        assert.equal(hashKey(b.key("hello")), hashKey(new CacheKeyBuilder({ ...PARTS }).key("hello")), "stable");
    });

    it("the Redis encoding round-trips bit for bit", () => {
        const vector = new Float32Array([0.1, -2.5e-38, Number.MIN_VALUE, 3.4e38, -0, 1 / 3]);
        const back = decodeEntry(encodeEntry({ vector, tokens: 7, truncated: true }))!;
        assert.deepEqual(Buffer.from(back.vector.buffer), Buffer.from(vector.buffer));
        assert.equal(back.tokens, 7);
        assert.equal(back.truncated, true);
        // Unaligned input (as Redis replies arrive inside larger buffers) decodes too.
        const bytes = encodeEntry({ vector, tokens: 3, truncated: false });
        const shifted = Buffer.concat([Buffer.alloc(1), bytes]).subarray(1);
        assert.deepEqual(Buffer.from(decodeEntry(shifted)!.vector.buffer), Buffer.from(vector.buffer));
        assert.equal(decodeEntry(Buffer.from("nonsense")), undefined);
    });
});

describe("memory cache", () => {
    let server: TestServer;
    const engines = new Map<string, FaultyEngine>();
    let engine: FaultyEngine;
    before(async () => {
        server = await startTestServer({
            models: [
                { preset: "bert-tiny", id: "bert-tiny", prompts: { query: "query: ", document: "passage: " } },
                { preset: "bert-tiny", id: "bert-twin" },
            ],
            config: { metrics: { public: true } },
            loader: countingLoader(engines),
        });
        engine = engines.get("bert-tiny")!;
    });
    after(() => server.close());

    it("a hit equals the computed vector bit for bit and skips the engine", async () => {
        const before = engineSequences(engine);
        const [computed] = await embedBase64(server, { input: "the cached text" });
        assert.equal(engineSequences(engine), before + 1);
        const m0 = await metrics(server);
        const [cached] = await embedBase64(server, { input: "the cached text" });
        assert.equal(engineSequences(engine), before + 1, "the engine was not called again");
        assert.equal(cached, computed, "same float32 bytes");
        const m1 = await metrics(server);
        assert.equal(metricValue(m1, 'embedding_cache_hits_total{layer="memory"}') - metricValue(m0, 'embedding_cache_hits_total{layer="memory"}'), 1);
        // Usage still reports the input's tokens on a hit.
        const hit = await server.post("/v1/embeddings", { input: "the cached text" });
        const miss = await server.post("/v1/embeddings", { input: "the cached text!" });
        assert.ok(hit.json().usage.prompt_tokens > 2);
        assert.equal(hit.json().usage.prompt_tokens + 1, miss.json().usage.prompt_tokens);
        // The float encoding carries the same values.
        assert.deepEqual(hit.json().data[0].embedding, Array.from(fromBase64(cached!)).map((x) => Number(x.toPrecision(9))));
    });

    it("identical inputs in one request reach the engine once", async () => {
        const before = engineSequences(engine);
        const vectors = await embedBase64(server, { input: ["dup one", "dup two", "dup one", "dup one", "dup two"] });
        assert.equal(engineSequences(engine) - before, 2);
        assert.equal(vectors[0], vectors[2]);
        assert.equal(vectors[0], vectors[3]);
        assert.equal(vectors[1], vectors[4]);
        assert.notEqual(vectors[0], vectors[1]);
    });

    it("concurrent identical requests reach the engine once", async () => {
        engine.delayMs = 150;
        try {
            const before = engineSequences(engine);
            const m0 = await metrics(server);
            const all = await Promise.all(Array.from({ length: 12 }, () => embedBase64(server, { input: ["in flight together", "and its twin"] })));
            assert.equal(engineSequences(engine) - before, 2, "each distinct input computed once");
            for (const v of all) assert.deepEqual(v, all[0]);
            const m1 = await metrics(server);
            assert.equal(metricValue(m1, "embedding_cache_coalesced_total") - metricValue(m0, "embedding_cache_coalesced_total"), 22);
            // Mixed: a request whose inputs are partly in flight elsewhere computes only the rest.
            const slow = embedBase64(server, { input: ["shared slow input"] });
            await new Promise((r) => setTimeout(r, 20));
            const mixed = await embedBase64(server, { input: ["own input", "shared slow input"] });
            assert.equal((await slow)[0], mixed[1]);
            assert.equal(engineSequences(engine) - before, 4);
        } finally {
            engine.delayMs = 0;
        }
    });

    it("a joined request survives its owner's failure", async () => {
        engine.delayMs = 100;
        engine.failNext = 1;
        try {
            const before = engineSequences(engine);
            const owner = server.post("/v1/embeddings", { input: "owner fails" });
            await new Promise((r) => setTimeout(r, 20));
            const joiner = server.post("/v1/embeddings", { input: "owner fails" });
            assert.equal((await owner).statusCode, 500);
            const res = await joiner;
            assert.equal(res.statusCode, 200, res.body);
            assert.equal(engineSequences(engine) - before, 2, "the joiner computed it after the owner's failure");
        } finally {
            engine.delayMs = 0;
            engine.failNext = 0;
        }
    });

    it("dimensions, prompt, normalize, truncate and model each get their own entry", async () => {
        const text = "one text, many variants";
        const variants: Record<string, unknown>[] = [
            {},
            { dimensions: 32 },
            { dimensions: 64 },
            { input_type: "query" },
            { input_type: "document" },
            { normalize: false },
            { truncate: true },
            { model: "bert-twin" },
        ];
        const first: string[] = [];
        for (const v of variants) {
            const e = v.model === "bert-twin" ? engines.get("bert-twin")! : engine;
            const before = engineSequences(e);
            const [vec] = await embedBase64(server, { input: text, ...v });
            assert.equal(engineSequences(e) - before, 1, `${JSON.stringify(v)} is computed, not served from another variant`);
            first.push(vec!);
            const [again] = await embedBase64(server, { input: text, ...v });
            assert.equal(engineSequences(e) - before, 1, `${JSON.stringify(v)} hits its own entry`);
            assert.equal(again, vec);
        }
        const f = first.map(fromBase64);
        assert.equal(f[1]!.length, 32);
        assert.equal(f[2]!.length, 64);
        assert.ok(Math.abs(norm(f[1]!) - 1) < 1e-5, "renormalised");
        assert.notEqual(first[3], first[0], "query prompt changes the vector");
        assert.notEqual(first[4], first[3]);
        assert.ok(Math.abs(norm(f[5]!) - 1) > 1e-3, "not normalised");
        assert.equal(first[6], first[0], "truncate: same vector for a short input, separate entry");
        assert.equal(first[7], first[0], "same file under another id: same vector, separate entry");
    });

    it("token-id inputs are cached by their ids", async () => {
        const before = engineSequences(engine);
        const [a] = await embedBase64(server, { input: [101, 7592, 102] });
        const [b] = await embedBase64(server, { input: [101, 7592, 102] });
        assert.equal(a, b);
        assert.equal(engineSequences(engine) - before, 1);
    });

    it("limits and input checks still apply to inputs that were cached", async () => {
        await embedBase64(server, { input: "valid" });
        // U+FFFD is fine; an unpaired surrogate is still refused, never served as its replacement.
        await embedBase64(server, { input: "a\uFFFD" });
        const bad = await server.post("/v1/embeddings", { input: "a\uD800" });
        assert.equal(bad.statusCode, 400);
        const empty = await server.post("/v1/embeddings", { input: ["valid", ""] });
        assert.equal(empty.statusCode, 400);
        assert.equal(empty.json().error.param, "input[1]");
    });

    it("serves /metrics series for the cache", async () => {
        const text = await metrics(server);
        for (const series of [
            /embedding_cache_hits_total\{layer="memory"\} [1-9]/,
            /embedding_cache_misses_total\{layer="memory"\} [1-9]/,
            /embedding_cache_memory_bytes [1-9]/,
            /embedding_cache_memory_entries [1-9]/,
            /embedding_cache_coalesced_total [1-9]/,
        ]) {
            assert.match(text, series);
        }
    });
});

describe("memory cache bounded in bytes", () => {
    it("evicts the least recently used entries past cache.memoryBytes and counts them", async () => {
        // One entry's size (vector, key, overhead), measured; every text below has the same length.
        const probe = await startTestServer({ config: { metrics: { public: true } }, loader: countingLoader(new Map()) });
        await embedBase64(probe, { input: "entry 0" });
        const entryBytes = metricValue(await metrics(probe), "embedding_cache_memory_bytes");
        await probe.close();
        assert.ok(entryBytes > 512, `${entryBytes} bytes for 128 float32 and their key`);

        const limit = Math.floor(4.5 * entryBytes);
        const engines = new Map<string, FaultyEngine>();
        const server = await startTestServer({ config: { metrics: { public: true }, cache: { memoryBytes: limit } }, loader: countingLoader(engines) });
        try {
            const engine = engines.get("bert-tiny")!;
            for (let i = 0; i < 10; i++) await embedBase64(server, { input: `entry ${i}` });
            const text = await metrics(server);
            assert.equal(metricValue(text, 'embedding_cache_evictions_total{layer="memory"}'), 6);
            assert.equal(metricValue(text, "embedding_cache_memory_entries"), 4);
            assert.equal(metricValue(text, "embedding_cache_memory_bytes"), 4 * entryBytes);
            const before = engineSequences(engine);
            await embedBase64(server, { input: "entry 9" });
            assert.equal(engineSequences(engine), before, "recent entry still cached");
            await embedBase64(server, { input: "entry 0" });
            assert.equal(engineSequences(engine), before + 1, "oldest entry was evicted");
        } finally {
            await server.close();
        }
    });
});

describe("cache off", () => {
    it("cache.enabled false computes every input", async () => {
        const engines = new Map<string, FaultyEngine>();
        const server = await startTestServer({ config: { cache: { enabled: false } }, loader: countingLoader(engines) });
        try {
            assert.equal(server.cache, undefined);
            const a = await embedBase64(server, { input: ["same", "same"] });
            const b = await embedBase64(server, { input: "same" });
            assert.equal(a[0], b[0]);
            assert.equal(engineSequences(engines.get("bert-tiny")!), 3);
        } finally {
            await server.close();
        }
    });
});
