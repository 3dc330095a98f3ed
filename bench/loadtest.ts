/**
 * npm run loadtest -- [--url http://host:port] [--model file.gguf] [--requests 5000] [--concurrency 64] [--key K]
 * Drives many single-text /v1/embeddings requests at a fixed concurrency and reports errors,
 * latency percentiles, throughput and the server's RSS before and after.
 */
import { ensureTestModel } from "../test/fixtures/testModels.js";
import { freshText, parseArgs, percentile, residentMemoryBytes, startServer } from "./lib.js";

const args = parseArgs({ requests: "5000", concurrency: "64", warmup: "200" });
const total = Number(args.requests);
const concurrency = Number(args.concurrency);
const headers: Record<string, string> = { "content-type": "application/json", ...(args.key ? { authorization: `Bearer ${args.key}` } : {}) };

let url = args.url;
let stop: (() => Promise<void>) | undefined;
if (!url) {
    const model = args.model ?? (await ensureTestModel("bert-small-bench"));
    const server = await startServer(["--model", model, "--metrics.public", "true"]);
    url = server.url;
    stop = server.stop;
    console.log(`started embedding-server on ${url} with ${model}`);
}

async function run(count: number, offset: number) {
    const latencies: number[] = [];
    const errors = new Map<string, number>();
    let next = 0;
    const started = performance.now();
    await Promise.all(
        Array.from({ length: concurrency }, async () => {
            while (next < count) {
                const i = next++;
                const t0 = performance.now();
                try {
                    const res = await fetch(`${url}/v1/embeddings`, { method: "POST", headers, body: JSON.stringify({ input: freshText(offset + i) }) });
                    const body = (await res.json()) as { data?: unknown[] };
                    if (res.status !== 200 || body.data?.length !== 1) errors.set(`HTTP ${res.status}`, (errors.get(`HTTP ${res.status}`) ?? 0) + 1);
                } catch (err) {
                    const key = (err as Error).message;
                    errors.set(key, (errors.get(key) ?? 0) + 1);
                }
                latencies.push(performance.now() - t0);
            }
        }),
    );
    return { seconds: (performance.now() - started) / 1000, latencies: latencies.sort((a, b) => a - b), errors };
}

await run(Number(args.warmup), 10_000_000);
const rssBefore = await residentMemoryBytes(url, headers);
const result = await run(total, 0);
const rssAfter = await residentMemoryBytes(url, headers);
const errorCount = [...result.errors.values()].reduce((a, b) => a + b, 0);
const growth = (rssAfter - rssBefore) / rssBefore;

console.log(`requests      ${total} at concurrency ${concurrency}`);
console.log(`errors        ${errorCount}${errorCount ? ` ${JSON.stringify(Object.fromEntries(result.errors))}` : ""}`);
console.log(`throughput    ${(total / result.seconds).toFixed(1)} req/s (${result.seconds.toFixed(1)} s)`);
console.log(`latency p50   ${percentile(result.latencies, 50).toFixed(1)} ms`);
console.log(`latency p99   ${percentile(result.latencies, 99).toFixed(1)} ms`);
console.log(`RSS before    ${(rssBefore / 2 ** 20).toFixed(1)} MiB`);
console.log(`RSS after     ${(rssAfter / 2 ** 20).toFixed(1)} MiB (${(growth * 100).toFixed(1)}% growth)`);
console.log(`verdict       errors ${errorCount === 0 ? "OK" : "FAIL"}, RSS growth ${growth < 0.1 ? "OK" : "FAIL"} (goal: 0 errors, < 10%)`);
await stop?.();
process.exit(errorCount === 0 && growth < 0.1 ? 0 : 1);
