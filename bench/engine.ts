/**
 * npm run bench:engine -- [--model bert-small-bench|qwen3-0.6b-bench|file.gguf] [--threads 2]
 *                         [--tokens 18] [--sizes 1,8,16,32] [--seconds 5] [--rounds 2]
 *
 * The native engine alone (in process, no HTTP) against the best a plain C++ loop reaches on the
 * same llama.cpp build: native/src/bench/decode_loop.cpp packs S random sequences of L tokens
 * into one llama_decode, as fast as it can. Both take turns, S by S, on fresh random tokens, and
 * read the same outputs (pooled vectors, or each sequence's last token where the engine does
 * that). GFLOP/s counts the matrix products of the transformer blocks (2 x the elements of every
 * 2-D `blk.*` tensor per token); attention scores and the LM head are left out, so the figure is
 * comparable across the two ways of reading outputs.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { NativeEngine } from "../src/engine/nativeEngine.js";
import { blockMacsPerToken } from "../src/engine/replicaPlan.js";
import { buildDecodeLoop } from "../scripts/build-native.mjs";
import { ensureTestModel, type TestModelPreset } from "../test/fixtures/testModels.js";
import { parseArgs } from "./lib.js";

const args = parseArgs({ model: "bert-small-bench", threads: "2", tokens: "18", sizes: "1,8,16,32", seconds: "5", rounds: "2" });
const threads = Number(args.threads);
const tokens = Number(args.tokens);
const sizes = args.sizes!.split(",").map(Number);
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);
const modelPath = existsSync(args.model!) ? args.model! : await ensureTestModel(args.model as TestModelPreset);

const loopExe = await buildDecodeLoop();
const engine = await NativeEngine.create({ modelPath, threads, maxSequences: Math.max(...sizes), batchSize: Math.max(...sizes) * tokens });
const mode = engine.nativeInfo.lastTokenOnly ? "last" : "pooled";
const vocab = engine.info.vocabSize;
const macs = await blockMacsPerToken(modelPath);

let seed = 12345;
function randomSequence(): Uint32Array {
    const out = new Uint32Array(tokens);
    for (let i = 0; i < tokens; i++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        out[i] = Math.min(1000, vocab - 1) + (seed % (vocab - Math.min(1000, vocab - 1)));
    }
    return out;
}

async function engineRate(seqs: number): Promise<number> {
    const batch = () => Array.from({ length: seqs }, randomSequence);
    await engine.embed(batch());
    let n = 0;
    const start = performance.now();
    while (performance.now() - start < seconds * 1000) {
        const out = await engine.embed(batch());
        n += out.length;
    }
    return n / ((performance.now() - start) / 1000);
}

function loopRate(seqs: number): Promise<number> {
    return new Promise((resolve, reject) => {
        // The engine's process sets GOMP_SPINCOUNT before loading the addon; the loop gets the same.
        const child = spawn(loopExe, [modelPath, String(threads), String(tokens), String(seconds), mode, String(seqs)], {
            stdio: ["ignore", "pipe", "inherit"],
            env: process.env,
        });
        let out = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.on("error", reject);
        child.on("close", (code) => {
            if (code !== 0) return reject(new Error(`decode loop exited with ${code}`));
            resolve((JSON.parse(out.trim().split("\n").pop()!) as { embeddingsPerSecond: number }).embeddingsPerSecond);
        });
    });
}

const results = new Map<number, { engine: number[]; loop: number[] }>(sizes.map((s) => [s, { engine: [], loop: [] }]));
for (let r = 0; r < rounds; r++) {
    for (const s of sizes) {
        const row = results.get(s)!;
        // Alternate who goes first so drift on a shared machine hits both.
        if (r % 2 === 0) {
            row.engine.push(await engineRate(s));
            row.loop.push(await loopRate(s));
        } else {
            row.loop.push(await loopRate(s));
            row.engine.push(await engineRate(s));
        }
        console.error(`round ${r + 1}/${rounds} S=${s}: engine ${row.engine.at(-1)!.toFixed(1)}/s, loop ${row.loop.at(-1)!.toFixed(1)}/s`);
    }
}
await engine.dispose();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const gflops = (perSecond: number) => (perSecond * tokens * macs * 2) / 1e9;
console.log(`\nmodel ${modelPath}`);
console.log(`${engine.info.architecture}, ${threads} threads, ${tokens} tokens per sequence, outputs read: ${mode}, ${(macs / 1e6).toFixed(1)} M block MACs per token, median of ${rounds} rounds of ${seconds} s\n`);
console.log("| sequences per call | engine emb/s | engine GFLOP/s | C++ loop emb/s | C++ loop GFLOP/s | engine / loop |");
console.log("| ---: | ---: | ---: | ---: | ---: | ---: |");
let bestEngine = 0;
let bestLoop = 0;
for (const s of sizes) {
    const e = median(results.get(s)!.engine);
    const l = median(results.get(s)!.loop);
    bestEngine = Math.max(bestEngine, e);
    bestLoop = Math.max(bestLoop, l);
    console.log(`| ${s} | ${e.toFixed(1)} | ${gflops(e).toFixed(1)} | ${l.toFixed(1)} | ${gflops(l).toFixed(1)} | ${(e / l).toFixed(2)}x |`);
}
console.log(`\nbest: engine ${bestEngine.toFixed(1)} emb/s (${gflops(bestEngine).toFixed(1)} GFLOP/s), loop ${bestLoop.toFixed(1)} emb/s (${gflops(bestLoop).toFixed(1)} GFLOP/s): ${((100 * bestEngine) / bestLoop).toFixed(1)} % of the loop`);
