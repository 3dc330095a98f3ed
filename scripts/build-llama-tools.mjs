// Builds llama.cpp's llama-server, llama-embedding and llama-quantize from the same source and
// with the same GGML flags as the native addon (scripts/build-native.mjs), for benchmarks, parity
// checks and the quantize command. Not part of `npm ci`.
//
//   node scripts/build-llama-tools.mjs          builds (or reuses) and prints the bin directory
//   EMBEDDING_SERVER_NO_CUDA=1, EMBEDDING_SERVER_BUILD_JOBS, EMBEDDING_SERVER_BUILD_VERBOSE as for build-native
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
    buildJobs, cmakeDefines, detectCuda, keyOptions, summarize, detectToolchain, llamaCmakeOptions, llamaSourceId, run, shortHash, withLock,
} from "./build-native.mjs";
import { ensureLlamaSource, userCacheRoot } from "./llama-source.mjs";

export const TOOL_TARGETS = ["llama-server", "llama-embedding", "llama-quantize"];

const PREFIX = "[embedding-server tools]";
const log = (msg) => console.error(`${PREFIX} ${msg}`);

function toolOptions(cuda, ccache) {
    return {
        ...llamaCmakeOptions({ cuda, ccache }),
        LLAMA_BUILD_COMMON: "ON",
        LLAMA_BUILD_TOOLS: "ON",
        LLAMA_BUILD_EXAMPLES: "ON", // llama-embedding lives in examples/
        LLAMA_BUILD_SERVER: "ON",
        LLAMA_BUILD_TESTS: "OFF",
        LLAMA_BUILD_APP: "OFF",
    };
}

function variant(tc, src, cuda) {
    const options = toolOptions(Boolean(cuda), Boolean(tc.ccache));
    const generator = tc.ninja ? "Ninja" : undefined;
    const key = shortHash([
        "tools-v1", llamaSourceId(src), src, keyOptions(options), process.platform, process.arch,
        tc.cmakeVersion, tc.cxxVersion, generator ?? "default", cuda ?? "",
    ]);
    const dir = join(userCacheRoot(), "tools", key);
    return { options, generator, dir, binDir: join(dir, "bin"), done: join(dir, ".complete"), failed: join(dir, "cuda-failed") };
}

function binariesPresent(binDir) {
    const ext = process.platform === "win32" ? ".exe" : "";
    return TOOL_TARGETS.every((t) => existsSync(join(binDir, t + ext)));
}

/** The bin directory of an already finished tools build for the current source and flags, if any. */
export function existingToolsBinDir() {
    const tc = detectToolchain();
    if (tc.problem) return undefined;
    let src;
    try {
        src = ensureLlamaSource();
    } catch {
        return undefined;
    }
    const cuda = detectCuda();
    for (const v of [cuda ? variant(tc, src, cuda) : undefined, variant(tc, src, undefined)]) {
        if (v && existsSync(v.done) && binariesPresent(v.binDir)) return v.binDir;
    }
    return undefined;
}

async function buildVariant(tc, src, cuda) {
    const v = variant(tc, src, cuda);
    if (existsSync(v.done) && binariesPresent(v.binDir)) return { ok: true, binDir: v.binDir, cached: true };
    if (existsSync(v.failed)) return { ok: false, reason: readFileSync(v.failed, "utf8").trim() };
    return withLock(v.dir, async () => {
        if (existsSync(v.done) && binariesPresent(v.binDir)) return { ok: true, binDir: v.binDir, cached: true };
        const started = Date.now();
        log(`building ${TOOL_TARGETS.join(", ")} (${cuda ? "CUDA" : process.platform === "darwin" ? "Metal" : "CPU"}) in ${v.dir}`);
        const conf = await run(tc.cmake, [
            "-S", src, "-B", v.dir, ...(v.generator ? ["-G", v.generator] : []), ...cmakeDefines(v.options), "-Wno-dev",
        ], {
            print: (l) => console.error(l),
            prefix: PREFIX,
            filter: (l) => /^-- (ggml|Using|Including|CUDA|Metal|OpenMP|BLAS|Accelerate|Configuring done|Generating done)/.test(l) || (!cuda && /CMake Error/.test(l)),
            quietErrors: Boolean(cuda),
        });
        if (conf.code !== 0) {
            const reason = `cmake configure failed${cuda ? " with GGML_CUDA=ON" : ""}: ${summarize(conf.tail)}`;
            if (cuda) {
                // remembered, like the addon build: nvcc without cuBLAS or a GPU fails the same way every time
                mkdirSync(v.dir, { recursive: true });
                writeFileSync(v.failed, `${reason}\n`);
            }
            return { ok: false, reason };
        }
        const b = await run(tc.cmake, ["--build", v.dir, "--config", "Release", "-j", String(buildJobs()), "--target", ...TOOL_TARGETS], { print: (l) => console.error(l), prefix: PREFIX });
        if (b.code !== 0 || !binariesPresent(v.binDir)) {
            return { ok: false, reason: `build failed: ${summarize(b.tail)}` };
        }
        writeFileSync(v.done, `${new Date().toISOString()}\n`);
        log(`built in ${((Date.now() - started) / 1000).toFixed(0)}s`);
        return { ok: true, binDir: v.binDir, cached: false };
    }, { onWait: (pid) => log(`waiting for another build of the same tree (pid ${pid})`) });
}

/** Builds (or reuses) the tools; resolves with their bin directory, rejects when impossible. */
export async function buildLlamaTools() {
    const tc = detectToolchain();
    if (tc.problem) throw new Error(tc.problem);
    const src = ensureLlamaSource({ log });
    const cuda = detectCuda();
    let result;
    if (cuda) {
        result = await buildVariant(tc, src, cuda);
        if (!result.ok) log(`CUDA build not possible (${result.reason.slice(0, 300)}); building for CPU instead`);
    }
    if (!result?.ok) result = await buildVariant(tc, src, undefined);
    if (!result.ok) throw new Error(result.reason);
    return result.binDir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
    buildLlamaTools().then(
        (binDir) => console.log(binDir),
        (err) => {
            console.error(`${PREFIX} llama.cpp tools could not be built: ${err.message}`);
            process.exitCode = 1;
        },
    );
}
