/**
 * npm run bench:cache -- [--model file.gguf] [--connections 64] [--seconds 10] [--distinct 1000] [--redis true]
 *
 * The embedding cache's hot path, measured from a separate process with autocannon:
 *   1. cache-hit throughput: short single inputs (already cached) at 64 connections, base64 and float;
 *   2. uncached throughput at the same concurrency: every input fresh, so the engine runs;
 *   3. latency of one request at a time, cached vs uncached (p50/p99);
 *   4. with redis-server installed: the same hit throughput served from Redis (memory layer off).
 * The server's /metrics confirm that hits were hits.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { startRedisServer, REDIS_SERVER_BIN } from "../test/helpers/redisServer.js";
import { ensureTestModel } from "../test/fixtures/testModels.js";
import { freshText, parseArgs, percentile, startServer } from "./lib.js";

interface AutocannonResult {
    requests: { average: number; total: number };
    latency: { p50: number; p99: number; average: number };
    errors: number;
    non2xx: number;
    duration: number;
}
interface AutocannonRequest {
    method?: string;
    path?: string;
    body?: string;
    headers?: Record<string, string>;
    setupRequest?: (req: AutocannonRequest) => AutocannonRequest;
}
type Autocannon = (options: {
    url: string;
    connections: number;
    duration?: number;
    amount?: number;
    method?: string;
    headers?: Record<string, string>;
    requests?: AutocannonRequest[];
}) => Promise<AutocannonResult>;
// autocannon ships no type declarations; only the call used here is typed above.
const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

const args = parseArgs({ connections: "64", seconds: "10", distinct: "1000", latencyRequests: "300", redis: "true" });
const connections = Number(args.connections);
const seconds = Number(args.seconds);
const distinct = Number(args.distinct);
const headers = { "content-type": "application/json" };
const model = args.model ?? (await ensureTestModel("bert-small-bench"));

const bodyFor = (text: string, encoding: "base64" | "float") => JSON.stringify({ input: text, encoding_format: encoding });

async function warm(url: string, texts: string[]) {
    // Fill the cache in batches: one request per 64 inputs.
    for (let i = 0; i < texts.length; i += 64) {
        const res = await fetch(`${url}/v1/embeddings`, { method: "POST", headers, body: JSON.stringify({ input: texts.slice(i, i + 64) }) });
        // Read the body: an unread response keeps its connection busy, and shutdown would wait for it.
        const body = await res.text();
        if (res.status !== 200) throw new Error(`warm-up: HTTP ${res.status} ${body}`);
    }
}

async function hitThroughput(url: string, texts: string[], encoding: "base64" | "float") {
    const result = await autocannon({
        url: `${url}/v1/embeddings`,
        connections,
        duration: seconds,
        method: "POST",
        headers,
        requests: texts.map((t) => ({ body: bodyFor(t, encoding) })),
    });
    return result;
}

let freshSeed = 50_000_000;
async function missThroughput(url: string) {
    return autocannon({
        url: `${url}/v1/embeddings`,
        connections,
        duration: seconds,
        method: "POST",
        headers,
        requests: [{ setupRequest: (req) => ({ ...req, body: bodyFor(freshText(freshSeed++), "base64") }) }],
    });
}

/** One request at a time, so latency is the request's own cost, not queueing. */
async function sequentialLatency(url: string, texts: string[]) {
    const out: number[] = [];
    for (const text of texts) {
        const t0 = performance.now();
        const res = await fetch(`${url}/v1/embeddings`, { method: "POST", headers, body: bodyFor(text, "base64") });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        out.push(performance.now() - t0);
    }
    return out.sort((a, b) => a - b);
}

async function cacheMetrics(url: string) {
    const text = await (await fetch(`${url}/metrics`)).text();
    const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}"]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
    return {
        memoryHits: value('embedding_cache_hits_total{layer="memory"}'),
        redisHits: value('embedding_cache_hits_total{layer="redis"}'),
        redisErrors: value('embedding_cache_errors_total{layer="redis"}'),
        inputs: value('embedding_inputs_total{model="bench"}'),
    };
}

/** CPU seconds (user + system) a process has used, from /proc; undefined off Linux. */
function cpuSeconds(pid: number | undefined): number | undefined {
    try {
        const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
        return (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
        return undefined;
    }
}

/**
 * Runs a load and reports it with the server's CPU use: on a shared machine other processes take
 * cores away and the rate moves with them, while the server's CPU time per request barely does
 * (1e6 / µs per request is the rate one fully used core would give).
 */
async function measured(pid: number | undefined, run: () => Promise<AutocannonResult>) {
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    const result = await run();
    const wall = (performance.now() - t0) / 1000;
    const cpu1 = cpuSeconds(pid);
    const cpu = cpu0 === undefined || cpu1 === undefined ? undefined : cpu1 - cpu0;
    return { result, cores: cpu === undefined ? undefined : cpu / wall, usPerRequest: cpu === undefined ? undefined : (cpu * 1e6) / result.requests.total };
}

const line = (label: string, m: Awaited<ReturnType<typeof measured>>) => {
    const r = m.result;
    const cpu = m.usPerRequest === undefined ? "" : `   server ${m.cores!.toFixed(2)} cores, ${m.usPerRequest.toFixed(0)} µs CPU/request`;
    console.log(
        `${label.padEnd(34)} ${r.requests.average.toFixed(0).padStart(7)} embeddings/s   p50 ${r.latency.p50.toFixed(1).padStart(6)} ms   p99 ${r.latency.p99
            .toFixed(1)
            .padStart(6)} ms   errors ${r.errors + r.non2xx}${cpu}`,
    );
};

const texts = Array.from({ length: distinct }, (_, i) => freshText(i, 6));
const common = ["--model", model, "--model.id", "bench", "--metrics.public", "true"];

console.log(`model ${model}`);
console.log(`${connections} connections, ${seconds} s per run, ${distinct} distinct short inputs (~${texts[0]!.length} characters), one input per request\n`);

const server = await startServer(common);
try {
    await warm(server.url, texts);
    // A short run first, so the JIT has seen the hit path before it is measured.
    await autocannon({ url: `${server.url}/v1/embeddings`, connections, duration: 2, method: "POST", headers, requests: texts.map((t) => ({ body: bodyFor(t, "base64") })) });
    const before = await cacheMetrics(server.url);
    const pid = server.child.pid;
    const hitsBase64 = await measured(pid, () => hitThroughput(server.url, texts, "base64"));
    const hitsFloat = await measured(pid, () => hitThroughput(server.url, texts, "float"));
    const after = await cacheMetrics(server.url);
    line("cache hits, memory (base64)", hitsBase64);
    line("cache hits, memory (float JSON)", hitsFloat);
    const served = after.inputs - before.inputs;
    console.log(`  hits ${after.memoryHits - before.memoryHits} of ${served} inputs served during the hit runs\n`);

    const misses = await measured(pid, () => missThroughput(server.url));
    line("uncached (fresh inputs, engine)", misses);

    const cachedLatency = await sequentialLatency(server.url, texts.slice(0, Number(args.latencyRequests)));
    const freshLatency = await sequentialLatency(
        server.url,
        Array.from({ length: Number(args.latencyRequests) }, () => freshText(freshSeed++)),
    );
    console.log(
        `\nlatency, one request at a time:   cached p50 ${percentile(cachedLatency, 50).toFixed(2)} ms  p99 ${percentile(cachedLatency, 99).toFixed(2)} ms` +
            `   uncached p50 ${percentile(freshLatency, 50).toFixed(2)} ms  p99 ${percentile(freshLatency, 99).toFixed(2)} ms`,
    );
} finally {
    await server.stop();
}

if (args.redis !== "false" && REDIS_SERVER_BIN) {
    const redis = await startRedisServer();
    const viaRedis = await startServer([...common, "--redis.url", redis.url, "--cache.memory-bytes", "0"]);
    try {
        await warm(viaRedis.url, texts);
        await new Promise((r) => setTimeout(r, 500));
        const before = await cacheMetrics(viaRedis.url);
        const hits = await measured(viaRedis.child.pid, () => hitThroughput(viaRedis.url, texts, "base64"));
        const after = await cacheMetrics(viaRedis.url);
        console.log("");
        line("cache hits, Redis only (base64)", hits);
        console.log(`  Redis hits ${after.redisHits - before.redisHits}, Redis errors ${after.redisErrors - before.redisErrors}`);
    } finally {
        await viaRedis.stop();
        await redis.stop();
    }
} else if (args.redis !== "false") {
    console.log("\n(redis-server not installed: Redis layer not measured)");
}
