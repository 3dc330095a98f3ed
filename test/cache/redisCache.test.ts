import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FaultyEngine } from "../helpers/faultyEngine.js";
import { REDIS_SKIP_REASON, startRedisServer, type RedisServer } from "../helpers/redisServer.js";
import { startTestServer, type TestServer, type TestServerOptions } from "../helpers/testServer.js";
import { countingLoader, embedBase64, engineSequences, metrics, metricValue } from "./cacheTestKit.js";

const REDIS_HITS = 'embedding_cache_hits_total{layer="redis"}';
const REDIS_MISSES = 'embedding_cache_misses_total{layer="redis"}';
const REDIS_ERRORS = 'embedding_cache_errors_total{layer="redis"}';

/** A test server on the shared Redis, counting what reaches its engine. */
async function serverOn(redis: RedisServer, config: TestServerOptions["config"] = {}) {
    const engines = new Map<string, FaultyEngine>();
    const server = await startTestServer({
        config: { metrics: { public: true }, ...config, redis: { url: redis.url, ...(config.redis ?? {}) } },
        loader: countingLoader(engines),
    });
    return { server, engine: engines.get("bert-tiny")! };
}

/** Polls until `check` holds, or fails after `ms`. */
async function eventually(check: () => Promise<boolean>, ms: number, what: string) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
        if (await check()) return;
        await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`${what} within ${ms} ms`);
}

describe("redis cache shared by instances", { skip: REDIS_SKIP_REASON }, () => {
    let redis: RedisServer;
    let a: Awaited<ReturnType<typeof serverOn>>;
    let b: Awaited<ReturnType<typeof serverOn>>;
    before(async () => {
        redis = await startRedisServer();
        a = await serverOn(redis);
        b = await serverOn(redis);
    });
    after(async () => {
        await a?.server.close();
        await b?.server.close();
        await redis?.stop();
    });

    it("a vector computed by one instance is a Redis hit on another, bit for bit, without its engine", async () => {
        const inputs = ["shared across instances", "and a second one"];
        const computed = await embedBase64(a.server, { input: inputs, dimensions: 64 });
        // Writes to Redis do not hold up the response; wait for them to land.
        await eventually(async () => redis.cli("DBSIZE") === "2", 2000, "both vectors stored in Redis");
        const keys = redis.cli("KEYS", "*").split("\n");
        assert.ok(keys.every((k) => k.startsWith("embedding-server:emb:")), keys.join(", "));
        const ttl = Number(redis.cli("TTL", keys[0]!));
        assert.ok(ttl > 604_000 && ttl <= 604_800, `TTL ${ttl}`);
        assert.equal(Number(redis.cli("STRLEN", keys[0]!)), 8 + 64 * 4, "8-byte header + 64 float32");

        const cached = await embedBase64(b.server, { input: inputs, dimensions: 64 });
        assert.deepEqual(cached, computed, "same float32 bytes");
        assert.equal(engineSequences(b.engine), 0, "instance b never called its engine");
        const m = await metrics(b.server);
        assert.equal(metricValue(m, REDIS_HITS), 2);
        assert.equal(metricValue(m, REDIS_ERRORS), 0);
        // Promoted into b's memory: the next request is a memory hit.
        await embedBase64(b.server, { input: inputs, dimensions: 64 });
        const m2 = await metrics(b.server);
        assert.equal(metricValue(m2, REDIS_HITS), 2);
        assert.equal(metricValue(m2, 'embedding_cache_hits_total{layer="memory"}'), 2);
        // Another dimensions value is another key: a miss everywhere.
        await embedBase64(b.server, { input: inputs[0] });
        assert.equal(engineSequences(b.engine), 1);
        assert.equal(metricValue(await metrics(b.server), REDIS_MISSES), 1);
    });
});

describe("redis failures never fail a request", { skip: REDIS_SKIP_REASON }, () => {
    let redis: RedisServer;
    let a: Awaited<ReturnType<typeof serverOn>>;
    let b: Awaited<ReturnType<typeof serverOn>>;
    before(async () => {
        redis = await startRedisServer();
        // Memory off: every lookup goes to Redis, so its failure is on every request's path.
        a = await serverOn(redis, { cache: { memoryBytes: 0 } });
        b = await serverOn(redis, { cache: { memoryBytes: 0 } });
    });
    after(async () => {
        await a?.server.close();
        await b?.server.close();
        await redis?.stop();
    });

    it("SIGKILL under a steady stream: zero failed requests, errors counted, reconnects and hits resume", async () => {
        const statuses = new Map<number, number>();
        let stop = false;
        let sent = 0;
        const worker = async (w: number) => {
            while (!stop) {
                const server = (sent + w) % 2 === 0 ? a.server : b.server;
                const res = await server.post("/v1/embeddings", { input: [`steady ${sent++ % 25}`, `worker ${w}`] });
                statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
                await new Promise((r) => setTimeout(r, 2));
            }
        };
        const workers = Array.from({ length: 6 }, (_, w) => worker(w));
        await new Promise((r) => setTimeout(r, 400));
        const hitsBefore = metricValue(await metrics(a.server), REDIS_HITS) + metricValue(await metrics(b.server), REDIS_HITS);
        assert.ok(hitsBefore > 0, "Redis served hits before the crash");

        await redis.kill();
        await new Promise((r) => setTimeout(r, 600));
        const errorsDuring = metricValue(await metrics(a.server), REDIS_ERRORS) + metricValue(await metrics(b.server), REDIS_ERRORS);
        assert.ok(errorsDuring > 0, "failed Redis calls are counted");

        await redis.restart();
        // The restarted Redis is empty; hits resume once the stream has written entries again.
        const hitsAt = async () => metricValue(await metrics(a.server), REDIS_HITS) + metricValue(await metrics(b.server), REDIS_HITS);
        const hitsAfterRestart = await hitsAt();
        await eventually(async () => (await hitsAt()) > hitsAfterRestart + 10, 5000, "Redis hits resume after the restart");
        stop = true;
        await Promise.all(workers);

        assert.deepEqual([...statuses.keys()], [200], `every request succeeded: ${JSON.stringify(Object.fromEntries(statuses))}`);
        assert.ok(sent > 100, `a steady stream (${sent} requests)`);
    });

    it("a stalled Redis (SIGSTOP) costs at most the timeout, then is bypassed", async () => {
        await embedBase64(a.server, { input: "before the stall" });
        redis.pause();
        try {
            const latencies: number[] = [];
            for (let i = 0; i < 20; i++) {
                const t0 = performance.now();
                await embedBase64(a.server, { input: `during the stall ${i}` });
                latencies.push(performance.now() - t0);
            }
            // redis.timeoutMs is 100: the first lookup waits that long, then Redis is skipped for a second.
            assert.ok(Math.max(...latencies) < 1000, `max latency ${Math.max(...latencies).toFixed(0)} ms`);
            const slow = latencies.filter((ms) => ms >= 90).length;
            assert.ok(slow <= 2, `${slow} requests waited for the timeout`);
        } finally {
            redis.resume();
        }
        await eventually(async () => {
            await embedBase64(a.server, { input: "after the stall" });
            const before = metricValue(await metrics(b.server), REDIS_HITS);
            await embedBase64(b.server, { input: "after the stall" });
            return metricValue(await metrics(b.server), REDIS_HITS) > before;
        }, 5000, "Redis serves again after the stall");
    });
});

describe("redis down from the start", { skip: REDIS_SKIP_REASON }, () => {
    it("serves every request, with errors counted, and picks Redis up when it appears", async () => {
        const redis = await startRedisServer();
        await redis.kill();
        const { server } = await serverOn(redis, { cache: { memoryBytes: 0 }, rateLimit: { enabled: true, requestsPerMinute: 1000 } });
        try {
            for (let i = 0; i < 5; i++) await embedBase64(server, { input: `no redis ${i}` });
            const m = await metrics(server);
            assert.ok(metricValue(m, REDIS_ERRORS) >= 5);
            assert.ok(metricValue(m, 'embedding_rate_limit_store_errors_total{kind="requests"}') >= 5);
            await redis.restart();
            await eventually(async () => {
                await embedBase64(server, { input: "redis is back" });
                return metricValue(await metrics(server), REDIS_HITS) > 0;
            }, 5000, "the client connects once Redis is up");
        } finally {
            await server.close();
            await redis.stop();
        }
    });
});

describe("rate limits shared through redis", { skip: REDIS_SKIP_REASON }, () => {
    const KEY = "api-key-shared-limit";
    const auth = { authorization: `Bearer ${KEY}` };
    let redis: RedisServer;
    const servers: TestServer[] = [];
    before(async () => {
        redis = await startRedisServer();
    });
    after(async () => {
        for (const s of servers) await s.close();
        await redis?.stop();
    });

    it("N requests per minute split across two instances: the N+1th is refused", async () => {
        const config = { auth: { apiKeys: [KEY] }, rateLimit: { enabled: true, requestsPerMinute: 5 } };
        const a = (await serverOn(redis, config)).server;
        const b = (await serverOn(redis, config)).server;
        servers.push(a, b);
        const order = [a, b, a, b, b];
        for (const [i, s] of order.entries()) {
            const res = await s.post("/v1/embeddings", { input: `limited ${i}` }, auth);
            assert.equal(res.statusCode, 200, `request ${i + 1}`);
            assert.equal(res.headers["ratelimit-remaining"], String(4 - i));
        }
        const refused = await a.post("/v1/embeddings", { input: "one too many" }, auth);
        assert.equal(refused.statusCode, 429);
        assert.equal(refused.json().error.code, "rate_limit_exceeded");
        assert.equal((await b.post("/v1/embeddings", { input: "one too many" }, auth)).statusCode, 429);
    });

    it("tokens per minute are shared too, and Redis down lets requests through", async () => {
        const config = { auth: { apiKeys: [KEY] }, rateLimit: { enabled: true, requestsPerMinute: 1000, tokensPerMinute: 20 }, redis: { prefix: "tokens-test:" } };
        const a = (await serverOn(redis, config)).server;
        const b = (await serverOn(redis, config)).server;
        servers.push(a, b);
        const first = await a.post("/v1/embeddings", { input: "a few words here" }, auth);
        assert.equal(first.statusCode, 200);
        const used = first.json().usage.prompt_tokens as number;
        assert.equal(first.headers["x-ratelimit-tokens-remaining"], String(20 - used));
        const second = await b.post("/v1/embeddings", { input: "a few words here" }, auth);
        assert.equal(second.headers["x-ratelimit-tokens-remaining"], String(20 - 2 * used), "b counts a's tokens");
        let refused;
        for (let i = 0; i < 10 && !refused; i++) {
            const res = await (i % 2 ? a : b).post("/v1/embeddings", { input: "a few words here" }, auth);
            if (res.statusCode === 429) refused = res;
        }
        assert.ok(refused, "the shared token budget ran out");
        assert.match(refused.json().error.message, /20 tokens per minute/);

        await redis.kill();
        for (const s of [a, b]) {
            const res = await s.post("/v1/embeddings", { input: "a few words here" }, auth);
            assert.equal(res.statusCode, 200, "Redis down: limits let requests through");
            const m = await metrics(s);
            assert.ok(metricValue(m, 'embedding_rate_limit_store_errors_total{kind="tokens"}') >= 1);
        }
        await redis.restart();
    });
});
