/**
 * npm run bench:cluster -- [--model file.gguf] [--requests 1500] [--concurrency 16] [--warmup 200] [--rounds 3]
 *
 * Throughput and latency of single-text /v1/embeddings requests with fresh inputs: one instance
 * directly, then one and two instances behind nginx (deploy/nginx/embedding-server.conf, via
 * scripts/cluster.ts), with the default thread count and with the cores split between instances.
 * Rows are interleaved over several rounds (the machine may be shared) and the table shows the
 * median of each figure with the range of throughputs.
 */
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { ensureTestModel } from "../test/fixtures/testModels.js";
import { findNginx, startCluster } from "../scripts/cluster.js";
import { freshText, parseArgs, percentile } from "./lib.js";

const args = parseArgs({ requests: "1500", concurrency: "16", warmup: "200", rounds: "3" });
const rounds = Number(args.rounds);
const total = Number(args.requests);
const concurrency = Number(args.concurrency);
const model = args.model ?? (await ensureTestModel("bert-small-bench"));
if (!findNginx()) {
    console.error("nginx is not installed (apt-get install nginx, or set NGINX=/path/to/nginx)");
    process.exit(2);
}

let seed = 0;
async function drive(url: string, count: number) {
    const latencies: number[] = [];
    let errors = 0;
    let issued = 0;
    const started = performance.now();
    await Promise.all(
        Array.from({ length: concurrency }, async () => {
            while (issued < count) {
                issued++;
                const t0 = performance.now();
                try {
                    const res = await fetch(`${url}/v1/embeddings`, {
                        method: "POST",
                        headers: { "content-type": "application/json" },
                        // Fresh text every time: no cache anywhere can answer it.
                        body: JSON.stringify({ input: freshText(seed++) }),
                    });
                    const body = (await res.json()) as { data?: unknown[] };
                    if (res.status !== 200 || body.data?.length !== 1) errors++;
                } catch {
                    errors++;
                }
                latencies.push(performance.now() - t0);
            }
        }),
    );
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    return { rps: count / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

interface Row {
    setup: string;
    instances: number;
    nginx: boolean;
    threads?: number;
}

const cores = availableParallelism();
const half = Math.max(1, Math.floor(cores / 2));
const rows: Row[] = [
    { setup: "1 instance, direct (no nginx)", instances: 1, nginx: false },
    { setup: "1 instance behind nginx", instances: 1, nginx: true },
    { setup: "2 instances behind nginx", instances: 2, nginx: true },
    { setup: `1 instance behind nginx, model.threads ${half}`, instances: 1, nginx: true, threads: half },
    { setup: `2 instances behind nginx, model.threads ${half} each`, instances: 2, nginx: true, threads: half },
];

console.log(`model ${model}`);
console.log(`${cores} cores (${cpus()[0]?.model ?? "?"}), ${(totalmem() / 2 ** 30).toFixed(0)} GB, ${process.platform}-${process.arch}, node ${process.version}`);
console.log(`${total} single-text requests per row and round at concurrency ${concurrency}, after ${args.warmup} warm-up requests; ${rounds} rounds, rows interleaved`);
// Other work on the machine skews every row; the load average shows whether it was idle.
console.log(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);

type Result = Awaited<ReturnType<typeof drive>> & { threads?: number };
const results: Result[][] = rows.map(() => []);
for (let round = 1; round <= rounds; round++) {
    for (const [i, row] of rows.entries()) {
        const cluster = await startCluster({
            model,
            instances: row.instances,
            nginx: row.nginx,
            redis: false,
            serveArgs: row.threads ? ["--model.threads", String(row.threads)] : [],
        });
        try {
            await drive(cluster.url, Number(args.warmup));
            const r = await drive(cluster.url, total);
            const threads = await fetch(`${cluster.instances[0]!.url}/info`)
                .then((res) => res.json() as Promise<{ models: { backend?: { threads?: number } }[] }>)
                .then((info) => info.models[0]?.backend?.threads)
                .catch(() => undefined);
            results[i]!.push({ ...r, threads });
            console.log(`round ${round}: ${row.setup}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, ${r.errors} errors`);
        } finally {
            await cluster.stop();
        }
    }
}
console.log(`\nload average after: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);

const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
console.log(`\nmedian of ${rounds} rounds (req/s range in brackets)\n`);
console.log("| setup | threads per instance | req/s | p50 ms | p99 ms | errors |\n| --- | ---: | ---: | ---: | ---: | ---: |");
for (const [i, row] of rows.entries()) {
    const rs = results[i]!;
    const rps = rs.map((r) => r.rps);
    const range = rs.length > 1 ? ` (${Math.min(...rps).toFixed(0)}–${Math.max(...rps).toFixed(0)})` : "";
    console.log(
        `| ${row.setup} | ${rs[0]?.threads ?? "?"} | ${median(rps).toFixed(0)}${range} | ${median(rs.map((r) => r.p50)).toFixed(1)} | ${median(rs.map((r) => r.p99)).toFixed(1)} | ${rs.reduce((a, r) => a + r.errors, 0)} |`,
    );
}
