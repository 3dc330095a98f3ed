/**
 * npm run bench -- [--model bert-small-bench|qwen3-0.6b-bench|file.gguf] [--threads 2] [--replicas auto|N]
 *                  [--rounds 2] [--seconds 6] [--skip-nlc]
 *
 * Throughput and latency of this server (native engine), llama.cpp's own llama-server built from
 * the same source with the same flags, and this server on the node-llama-cpp engine (its pool of
 * contexts, and a single LlamaEmbeddingContext as node-llama-cpp offers it), on the same GGUF with
 * the same threads. Servers take turns on identical but never-repeated inputs, so no cache can
 * serve them, in three workloads: client batches of 32 at concurrency 4, single texts at
 * concurrency 16, single texts at concurrency 1.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ensureTestModel, type TestModelPreset } from "../test/fixtures/testModels.js";
import { freePort, freshText, parseArgs, percentile, startServer, waitHealthy } from "./lib.js";

const args = parseArgs({ model: "bert-small-bench", threads: "2", rounds: "2", seconds: "6", replicas: "auto" });
const threads = Number(args.threads);
const rounds = Number(args.rounds);
const secondsPerTurn = Number(args.seconds);
const modelPath = existsSync(args.model!) ? args.model! : await ensureTestModel(args.model as TestModelPreset);

interface Peer {
    name: string;
    url: string;
    stop(): Promise<void>;
    /** Sends one request of `texts`; resolves when the vectors arrived. */
    send(texts: string[]): Promise<void>;
}

async function postEmbeddings(url: string, texts: string[]) {
    const res = await fetch(`${url}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ input: texts.length === 1 ? texts[0] : texts, encoding_format: "float" }),
    });
    const body = (await res.json()) as { data?: unknown[] };
    if (res.status !== 200 || body.data?.length !== texts.length) throw new Error(`HTTP ${res.status}: ${JSON.stringify(body).slice(0, 200)}`);
}

/**
 * The native server runs with the default `replicas: auto` unless --replicas N is given, in which
 * case it gets N copies of threads/N threads each: the same cores either way.
 */
async function nativeServer(): Promise<Peer> {
    const fixed = args.replicas !== "auto";
    const n = fixed ? Number(args.replicas) : 0;
    const s = await startServer([
        "--model", modelPath, "--model.engine", "native", "--model.max-sequences", "16",
        ...(fixed ? ["--model.replicas", String(n), "--model.threads", String(Math.max(1, threads / n))] : []),
    ]);
    const info = (await (await fetch(`${s.url}/info`)).json()) as { models: { backend: { threads: number; details?: string } }[] };
    const backend = info.models[0]!.backend;
    if (backend.threads !== threads) {
        await s.stop();
        throw new Error(`the native server uses ${backend.threads} threads in all, not --threads ${threads}; pass --replicas N to split them explicitly`);
    }
    const copies = /^(\d+) replicas x (\d+)/.exec(backend.details ?? "");
    const name = copies ? `embedding-server (native, ${copies[1]}x${copies[2]} threads)` : `embedding-server (native, 1x${threads} threads)`;
    return { name, url: s.url, stop: s.stop, send: (texts) => postEmbeddings(s.url, texts) };
}

/** node-llama-cpp: this server's pool of contexts, or (maxSequences 1) one LlamaEmbeddingContext with every thread. */
async function nodeLlamaCppServer(singleContext: boolean): Promise<Peer> {
    const s = await startServer(["--model", modelPath, "--model.engine", "node-llama-cpp", "--model.threads", String(threads), "--model.max-sequences", singleContext ? "1" : "16"]);
    const name = singleContext ? "embedding-server (node-llama-cpp, 1 context)" : "embedding-server (node-llama-cpp)";
    return { name, url: s.url, stop: s.stop, send: (texts) => postEmbeddings(s.url, texts) };
}

async function llamaServer(): Promise<Peer> {
    const { buildLlamaTools, existingToolsBinDir } = await import("../scripts/build-llama-tools.mjs");
    const bin = existingToolsBinDir() ?? (await buildLlamaTools());
    const port = await freePort();
    const parallel = 16;
    const child: ChildProcess = spawn(
        join(bin, "llama-server"),
        ["-m", modelPath, "--embeddings", "--host", "127.0.0.1", "--port", String(port), "-t", String(threads), "-tb", String(threads),
         "--parallel", String(parallel), "-c", String(512 * parallel), "-b", "2048", "-ub", "2048", "--no-webui", "--log-disable"],
        { stdio: ["ignore", "ignore", "inherit"] },
    );
    const url = `http://127.0.0.1:${port}`;
    await waitHealthy(`${url}/health`, child);
    return {
        name: "llama-server",
        url,
        send: (texts) => postEmbeddings(url, texts),
        stop: () => new Promise((r) => (child.exitCode !== null ? r() : (child.once("exit", () => r()), child.kill("SIGTERM")))),
    };
}

interface Workload {
    name: string;
    batch: number;
    concurrency: number;
}
const WORKLOADS: Workload[] = [
    { name: "batches of 32, concurrency 4", batch: 32, concurrency: 4 },
    { name: "single texts, concurrency 16", batch: 1, concurrency: 16 },
    { name: "single texts, concurrency 1", batch: 1, concurrency: 1 },
];

let seed = 0;
async function turn(peer: Peer, w: Workload) {
    const latencies: number[] = [];
    let embeddings = 0;
    const deadline = performance.now() + secondsPerTurn * 1000;
    const started = performance.now();
    await Promise.all(
        Array.from({ length: w.concurrency }, async () => {
            while (performance.now() < deadline) {
                const texts = Array.from({ length: w.batch }, () => freshText(seed++));
                const t0 = performance.now();
                await peer.send(texts);
                latencies.push(performance.now() - t0);
                embeddings += texts.length;
            }
        }),
    );
    return { embeddings, seconds: (performance.now() - started) / 1000, latencies };
}

const peers: Peer[] = [await nativeServer(), await llamaServer()];
if (!args["skip-nlc"]) peers.push(await nodeLlamaCppServer(false), await nodeLlamaCppServer(true));
console.log(`model ${modelPath}\nthreads ${threads}, ${rounds} rounds of ${secondsPerTurn} s per server and workload, servers alternating\n`);

const results = new Map<string, { embeddings: number; seconds: number; latencies: number[] }>();
try {
    for (const w of WORKLOADS) {
        // Warm-up, then alternate servers round by round.
        for (const p of peers) await p.send(Array.from({ length: w.batch }, () => freshText(seed++)));
        for (let r = 0; r < rounds; r++) {
            for (const p of peers) {
                const res = await turn(p, w);
                const key = `${w.name}|${p.name}`;
                const acc = results.get(key) ?? { embeddings: 0, seconds: 0, latencies: [] };
                acc.embeddings += res.embeddings;
                acc.seconds += res.seconds;
                acc.latencies.push(...res.latencies);
                results.set(key, acc);
            }
        }
    }
} finally {
    for (const p of peers) await p.stop();
}

const rate = (w: Workload, p: Peer) => {
    const r = results.get(`${w.name}|${p.name}`)!;
    return r.embeddings / r.seconds;
};
console.log("| workload | server | embeddings/s | p50 ms | p99 ms | vs llama-server | vs node-llama-cpp | vs node-llama-cpp, 1 context |");
console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const w of WORKLOADS) {
    for (const p of peers) {
        const r = results.get(`${w.name}|${p.name}`)!;
        const sorted = r.latencies.sort((a, b) => a - b);
        const vsLlama = rate(w, p) / rate(w, peers[1]!);
        const vs = (peer?: Peer) => (peer ? `${(rate(w, p) / rate(w, peer)).toFixed(2)}x` : "-");
        console.log(
            `| ${w.name} | ${p.name} | ${rate(w, p).toFixed(1)} | ${percentile(sorted, 50).toFixed(1)} | ${percentile(sorted, 99).toFixed(1)} | ${vsLlama.toFixed(2)}x | ${vs(peers[2])} | ${vs(peers[3])} |`,
        );
    }
}
