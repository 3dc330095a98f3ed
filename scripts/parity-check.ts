/**
 * Parity check: NativeEngine vectors against llama.cpp's own llama-embedding (same source, same
 * flags, built by scripts/build-llama-tools.mjs) and optionally node-llama-cpp, per input.
 *
 *   node --import tsx scripts/parity-check.ts --model path/to/model.gguf [--texts file.txt] [--min 0.9999] [--node-llama-cpp]
 *   node --import tsx scripts/parity-check.ts --preset bert-tiny
 *
 * --texts: one input per line. Exits 1 when any cosine is below --min.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { getLlama, LlamaLogLevel, type Token } from "node-llama-cpp";
import { NativeEngine } from "../src/engine/nativeEngine.js";
import { cosineSimilarity as cosine } from "../src/core/vectors.js";

const execFileAsync = promisify(execFile);

const DEFAULT_TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons.",
    "I would like a large pizza with mushrooms, please.",
    "Der Vertrag wurde gestern unterschrieben.",
    "日本語のテキストも正しく処理されるべきです。",
    "a",
    "Embeddings map text to vectors so that similar meanings end up close together in the space.",
];


async function main(): Promise<number> {
    const { values } = parseArgs({
        options: {
            model: { type: "string" },
            preset: { type: "string" },
            texts: { type: "string" },
            min: { type: "string", default: "0.9999" },
            "node-llama-cpp": { type: "boolean", default: false },
            threads: { type: "string", default: "2" },
        },
    });
    let modelPath = values.model;
    if (!modelPath && values.preset) {
        const { ensureTestModel } = await import("../test/fixtures/testModels.js");
        modelPath = await ensureTestModel(values.preset as Parameters<typeof ensureTestModel>[0]);
    }
    if (!modelPath) {
        console.error("usage: parity-check.ts --model <file.gguf> | --preset <test preset> [--texts file] [--min 0.9999] [--node-llama-cpp]");
        return 2;
    }
    const texts = values.texts
        ? readFileSync(values.texts, "utf8").split("\n").filter((l) => l.trim().length > 0)
        : DEFAULT_TEXTS;
    const min = Number(values.min);
    const threads = Number(values.threads);

    const tools = (await import("./build-llama-tools.mjs")) as { buildLlamaTools(): Promise<string> };
    const binDir = await tools.buildLlamaTools();

    const engine = await NativeEngine.create({ modelPath, threads });
    let worst = 1;
    try {
        const tokens = await Promise.all(texts.map((t) => engine.tokenize(t, true)));
        const ours = await engine.embed(tokens);

        const sep = "<#parity-sep#>";
        const args = [
            "-m", modelPath, "-p", texts.join(sep), "--embd-separator", sep, "--embd-normalize", "-1",
            "--embd-output-format", "array", "-t", String(threads), "-c", "8192", "-b", "8192", "-ub", "8192", "--no-warmup",
            // One KV stream per input, as this engine runs decoders: with -np 1 llama-embedding packs
            // every input into one unified cache, whose flash-attention path drifts by ~3e-4 on a 28-layer model.
            "-np", String(Math.min(texts.length, 64)),
        ];
        // llama-embedding prints through llama.cpp's asynchronous logger, which is leaked at exit
        // and can lose the tail of the output on a busy machine: retry until the array is whole.
        let theirs: number[][] | undefined;
        for (let attempt = 0; attempt < 4 && !theirs; attempt++) {
            const { stdout } = await execFileAsync(join(binDir, "llama-embedding"), args, { maxBuffer: 256 * 1024 * 1024 });
            try {
                const parsed = JSON.parse(stdout.slice(Math.max(0, stdout.indexOf("[")))) as number[][];
                if (parsed.length === texts.length) theirs = parsed;
            } catch {
                // truncated
            }
        }
        if (!theirs) throw new Error("llama-embedding output was incomplete 4 times");

        let nlc: number[][] | undefined;
        if (values["node-llama-cpp"]) {
            const llama = await getLlama({ build: "never", logLevel: LlamaLogLevel.error });
            const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
            const ctx = await model.createEmbeddingContext({ contextSize: Math.min(engine.info.contextLength + 1, 8192), threads });
            nlc = [];
            for (const t of tokens) nlc.push([...(await ctx.getEmbeddingFor(Array.from(t) as Token[])).vector]);
            await ctx.dispose();
            await model.dispose();
        }

        console.log(`model ${modelPath} (${engine.info.architecture}, ${engine.info.pooling} pooling, ${engine.info.dimensions} dims, ${engine.backend.gpu})`);
        console.log(`  #  tokens  vs llama-embedding${nlc ? "  vs node-llama-cpp" : ""}  text`);
        for (let i = 0; i < texts.length; i++) {
            const c1 = cosine(ours[i]!, theirs[i]!);
            const c2 = nlc ? cosine(ours[i]!, nlc[i]!) : undefined;
            worst = Math.min(worst, c1, c2 ?? 1);
            console.log(
                `${String(i).padStart(3)}  ${String(tokens[i]!.length).padStart(6)}  ${c1.toFixed(6).padStart(17)}` +
                    `${c2 === undefined ? "" : c2.toFixed(6).padStart(20)}  ${texts[i]!.slice(0, 50)}`,
            );
        }
    } finally {
        await engine.dispose();
    }
    const ok = worst >= min;
    console.log(`${ok ? "OK" : "FAIL"}: worst cosine ${worst.toFixed(6)} (min ${min})`);
    return ok ? 0 : 1;
}

main().then(
    (code) => {
        process.exitCode = code;
    },
    (err) => {
        console.error(err);
        process.exitCode = 1;
    },
);
