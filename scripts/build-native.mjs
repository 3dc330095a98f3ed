// Builds the native batched embedding addon (native/ + llama.cpp, statically linked) into
// native/build/embedding_native.node. Runs during `npm ci`, before TypeScript is compiled,
// so it is plain ESM JavaScript. It never fails the install: when cmake, a compiler or the
// build itself is missing/broken it prints one line and exits 0, and the server falls back
// to the node-llama-cpp engine.
//
// Environment:
//   EMBEDDING_SERVER_SKIP_NATIVE=1   skip entirely
//   EMBEDDING_SERVER_NO_CUDA=1       never try CUDA even when nvcc is found
//   EMBEDDING_SERVER_FORCE_NATIVE=1  rebuild even when the cached .node exists
//   EMBEDDING_SERVER_BUILD_JOBS=N    parallel compile jobs (default: available cores)
//   EMBEDDING_SERVER_BUILD_VERBOSE=1 show full cmake/compiler output
//   EMBEDDING_SERVER_BUILD_CACHE     cache root (see llama-source.mjs), LLAMA_CPP_DIR: source tree
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
    copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureLlamaSource, userCacheRoot } from "./llama-source.mjs";

const require = createRequire(import.meta.url);
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const nativeDir = join(packageRoot, "native");
export const addonOutput = join(nativeDir, "build", "embedding_native.node");

const PREFIX = "[embedding-server native]";
const log = (msg) => console.log(`${PREFIX} ${msg}`);

/** Looks an executable up on PATH (plus optional extra dirs); returns its path or undefined. */
export function which(name, extraDirs = []) {
    const exts = process.platform === "win32" ? (process.env.PATHEXT || ".EXE;.CMD;.BAT").split(";") : [""];
    const dirs = [...(process.env.PATH || "").split(delimiter), ...extraDirs].filter(Boolean);
    for (const dir of dirs) {
        for (const ext of exts) {
            const p = join(dir, name + ext);
            try {
                if (statSync(p).isFile()) return p;
            } catch {
                // not here
            }
        }
    }
    return undefined;
}

function commandOutput(cmd, args) {
    try {
        return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
        return undefined;
    }
}

function firstLine(cmd, args) {
    return commandOutput(cmd, args)?.split("\n")[0].trim();
}

/** The tools needed to configure and compile; `problem` says what is missing. */
export function detectToolchain() {
    const cmake = which("cmake");
    if (!cmake) return { problem: "cmake was not found on PATH" };
    const cmakeVersion = firstLine(cmake, ["--version"]) || "cmake";
    const cxx = process.env.CXX || ["c++", "g++", "clang++"].map((n) => which(n)).find(Boolean);
    if (!cxx) return { problem: "no C++ compiler (c++, g++ or clang++) was found" };
    const cxxVersion = firstLine(cxx, ["--version"]) || cxx;
    const ninja = which("ninja");
    const ccache = which("ccache");
    return { cmake, cmakeVersion, cxx, cxxVersion, ninja, ccache };
}

/** nvcc on PATH or in the usual CUDA location, unless disabled. */
export function detectCuda() {
    if (process.env.EMBEDDING_SERVER_NO_CUDA === "1") return undefined;
    if (process.platform === "darwin") return undefined;
    const extra = process.platform === "win32" ? [] : ["/usr/local/cuda/bin"];
    if (process.env.CUDA_PATH) extra.unshift(join(process.env.CUDA_PATH, "bin"));
    return which("nvcc", extra);
}

/**
 * CMake -D options for llama.cpp/ggml on this platform. `cuda` adds GGML_CUDA. Shared by the
 * addon build and scripts/build-llama-tools.mjs so both use identical kernels.
 */
export function llamaCmakeOptions({ cuda = false, ccache = false } = {}) {
    const opts = {
        CMAKE_BUILD_TYPE: "Release",
        BUILD_SHARED_LIBS: "OFF",
        LLAMA_BUILD_TESTS: "OFF",
        LLAMA_BUILD_EXAMPLES: "OFF",
        LLAMA_BUILD_TOOLS: "OFF",
        LLAMA_BUILD_SERVER: "OFF",
        LLAMA_BUILD_APP: "OFF",
        LLAMA_BUILD_COMMON: "OFF",
        // This llama.cpp no longer has LLAMA_CURL (it is a deprecated no-op); HTTPS support is
        // LLAMA_OPENSSL. Nothing here may download anything at build time.
        LLAMA_OPENSSL: "OFF",
        LLAMA_BUILD_UI: "OFF",
        LLAMA_USE_PREBUILT_UI: "OFF",
        FETCHCONTENT_FULLY_DISCONNECTED: "ON",
        GGML_CCACHE: ccache ? "ON" : "OFF",
        GGML_NATIVE: "ON",
    };
    if (process.platform === "darwin") {
        opts.GGML_METAL = "ON";
        opts.GGML_METAL_EMBED_LIBRARY = "ON";
        opts.GGML_ACCELERATE = "ON";
        // Apple clang has no OpenMP; ggml's own thread pool is used instead.
        opts.GGML_OPENMP = "OFF";
    } else {
        opts.GGML_OPENMP = "ON";
    }
    if (cuda) opts.GGML_CUDA = "ON";
    return opts;
}

/** The options that shape the binaries (ccache only changes how they are compiled), for cache keys. */
export function keyOptions(opts) {
    const { GGML_CCACHE: _ccache, ...rest } = opts;
    return JSON.stringify(rest);
}

export function cmakeDefines(opts) {
    return Object.entries(opts).map(([k, v]) => `-D${k}=${v}`);
}

/** Identity of the llama.cpp source tree, for cache keys. */
export function llamaSourceId(srcDir) {
    const marker = join(srcDir, ".complete");
    if (existsSync(marker)) return readFileSync(marker, "utf8").trim();
    const head = firstLine("git", ["-C", srcDir, "rev-parse", "HEAD"]);
    return head ? `git-${head}` : `path-${srcDir}`;
}

export function shortHash(parts) {
    const h = createHash("sha256");
    for (const p of parts) h.update(String(p)).update("\0");
    return h.digest("hex").slice(0, 16);
}

function listFiles(dir) {
    const out = [];
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, entry.name);
        if (entry.isDirectory()) {
            if (entry.name !== "build") out.push(...listFiles(p));
        } else {
            out.push(p);
        }
    }
    return out.sort();
}

/**
 * llama.cpp makes every token of an embedding context an output. A decoder then runs its last
 * layer and its vocabulary-sized LM head (a quarter of Qwen3-0.6B's work) on every token and
 * copies n_tokens x n_vocab logits out, although last-token pooling keeps one row per sequence.
 * The addon compiles its own copy of llama-context.cpp in which a context with pooling "none"
 * outputs only the tokens the batch flags, as llama.cpp itself did until mid-2025; core.cpp
 * then flags each sequence's last token and reads its hidden state. The source tree is never
 * modified, so llama-server (scripts/build-llama-tools.mjs) stays llama.cpp as released.
 * When the line is not found (another llama.cpp via LLAMA_CPP_DIR) nothing is patched and the
 * addon notices at load time and pools inside llama.cpp as before.
 */
const SELECTIVE_OUTPUTS = {
    file: "src/llama-context.cpp",
    find: /const bool output_all(\s*)= cparams\.embeddings;/,
    replace: "const bool output_all$1= cparams.embeddings && cparams.pooling_type != LLAMA_POOLING_TYPE_NONE;",
};

/** The patched llama-context.cpp for the addon, or undefined when the source does not match. */
export function patchedLlamaContext(src) {
    const original = readFileSync(join(src, SELECTIVE_OUTPUTS.file), "utf8");
    if (!SELECTIVE_OUTPUTS.find.test(original)) return undefined;
    return `// Patched copy made by scripts/build-native.mjs (selective embedding outputs); do not edit.\n#line 1 "${SELECTIVE_OUTPUTS.file}"\n${original.replace(SELECTIVE_OUTPUTS.find, SELECTIVE_OUTPUTS.replace)}`;
}

/** The addon's own sources (CMakeLists.txt + src/**), relative path -> content. */
function addonSources() {
    const files = [join(nativeDir, "CMakeLists.txt"), ...listFiles(join(nativeDir, "src"))];
    return files.map((f) => ({ rel: relative(nativeDir, f), content: readFileSync(f) }));
}

function nodeApiIncludeDir() {
    const candidates = [join(dirname(dirname(process.execPath)), "include", "node")];
    try {
        candidates.push(join(dirname(require.resolve("node-api-headers/package.json")), "include"));
    } catch {
        // optional
    }
    return candidates.find((d) => existsSync(join(d, "node_api.h")));
}

function nodeAddonApiDir() {
    try {
        return dirname(require.resolve("node-addon-api/package.json"));
    } catch {
        return undefined;
    }
}

function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

function pidAlive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    } catch (err) {
        return err.code === "EPERM";
    }
}

/** Cross-process lock on a build directory (mkdir is atomic); waits for a live holder. */
export async function withLock(dir, fn, { onWait } = {}) {
    const lock = `${dir}.lock`;
    mkdirSync(dirname(lock), { recursive: true });
    let warned = false;
    for (;;) {
        try {
            mkdirSync(lock);
            writeFileSync(join(lock, "pid"), String(process.pid));
            break;
        } catch (err) {
            if (err.code !== "EEXIST") throw err;
            let holder = NaN;
            try {
                holder = Number(readFileSync(join(lock, "pid"), "utf8"));
            } catch {
                // being created or removed
            }
            if (Number.isFinite(holder) && holder > 0 && !pidAlive(holder)) {
                rmSync(lock, { recursive: true, force: true });
                continue;
            }
            if (!warned && onWait) onWait(holder);
            warned = true;
            await sleep(2000);
        }
    }
    try {
        return await fn();
    } finally {
        rmSync(lock, { recursive: true, force: true });
    }
}

/**
 * Runs a command, streaming a reasonable amount of output: cmake status lines and compiler
 * progress go through (ninja progress is condensed), full output only when verbose. Resolves
 * with the exit code and the tail of the output (for error reports).
 */
export function run(cmd, args, {
    cwd, verbose = process.env.EMBEDDING_SERVER_BUILD_VERBOSE === "1", filter, print = (l) => console.log(l), prefix = PREFIX, quietErrors = false,
} = {}) {
    return new Promise((resolvePromise) => {
        const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CLICOLOR_FORCE: "0" } });
        const tail = [];
        let lastProgress = 0;
        const onLine = (line) => {
            tail.push(line);
            if (tail.length > 60) tail.shift();
            if (verbose) return void print(line);
            if (filter && filter(line)) return void print(`${prefix}   ${line.slice(0, 160)}`);
            // ninja: "[123/456] Building ..." -> print about every 10%
            const m = /^\[(\d+)\/(\d+)\]/.exec(line);
            if (m) {
                const pct = Math.floor((100 * Number(m[1])) / Number(m[2]));
                if (pct >= lastProgress + 10 || m[1] === m[2]) {
                    lastProgress = pct;
                    print(`${prefix}   ${String(pct).padStart(3)}% ${line.replace(/^\[\d+\/\d+\]\s*/, "").slice(0, 110)}`);
                }
                return;
            }
            // make: "[ 42%] Building ..."
            const mk = /^\[\s*(\d+)%\]/.exec(line);
            if (mk) {
                const pct = Number(mk[1]);
                if (pct >= lastProgress + 10 || pct === 100) {
                    lastProgress = pct;
                    print(`${prefix}   ${line.slice(0, 120)}`);
                }
                return;
            }
            if (!quietErrors && /\berror\b|FAILED:/i.test(line) && !/-Werror/.test(line)) print(`${prefix}   ${line.slice(0, 300)}`);
        };
        const split = (stream) => {
            let buf = "";
            stream.setEncoding("utf8");
            stream.on("data", (chunk) => {
                buf += chunk;
                let i;
                while ((i = buf.indexOf("\n")) >= 0) {
                    onLine(buf.slice(0, i).replace(/\r$/, ""));
                    buf = buf.slice(i + 1);
                }
            });
            stream.on("end", () => buf && onLine(buf));
        };
        split(child.stdout);
        split(child.stderr);
        child.on("error", (err) => resolvePromise({ code: -1, tail: [...tail, String(err)] }));
        child.on("close", (code) => resolvePromise({ code: code ?? -1, tail }));
    });
}

export function buildJobs() {
    const n = Number(process.env.EMBEDDING_SERVER_BUILD_JOBS);
    return Number.isInteger(n) && n > 0 ? n : Math.max(1, availableParallelism());
}

/** Copies src over dst only when the bytes differ (keeps mtimes stable for incremental builds). */
function syncFile(content, dst) {
    if (existsSync(dst)) {
        const cur = readFileSync(dst);
        if (cur.equals(content)) return;
    }
    mkdirSync(dirname(dst), { recursive: true });
    writeFileSync(dst, content);
}

function installOutput(builtNode) {
    mkdirSync(dirname(addonOutput), { recursive: true });
    const tmp = `${addonOutput}.tmp-${process.pid}`;
    copyFileSync(builtNode, tmp);
    renameSync(tmp, addonOutput);
    writeFileSync(join(dirname(addonOutput), "embedding_native.source"), `${builtNode}\n`);
}

/**
 * Configures and builds one variant (cuda or not) of the addon. Returns { ok, node?, reason? }.
 * The build tree is keyed by everything that affects llama.cpp (source, flags, platform,
 * compiler); the finished .node additionally by the addon sources and the Node ABI, so
 * editing the addon only recompiles the addon.
 */
async function buildVariant({ tc, src, cuda, nodeInclude, addonApiDir }) {
    const options = llamaCmakeOptions({ cuda: Boolean(cuda), ccache: Boolean(tc.ccache) });
    const generator = tc.ninja ? "Ninja" : undefined;
    const patched = patchedLlamaContext(src);
    const treeKey = shortHash([
        "tree-v2", llamaSourceId(src), src, keyOptions(options), process.platform, process.arch,
        tc.cmakeVersion, tc.cxxVersion, generator ?? "default", cuda ? commandOutput(cuda, ["--version"]) ?? cuda : "",
        patched ? createHash("sha256").update(patched).digest("hex") : "unpatched",
    ]);
    const sources = addonSources();
    const nodeKey = shortHash([
        "node-v1", treeKey, process.versions.modules, process.versions.napi,
        ...sources.flatMap((s) => [s.rel, createHash("sha256").update(s.content).digest("hex")]),
    ]);
    const treeDir = join(userCacheRoot(), "build", treeKey);
    const finished = join(treeDir, "out", `embedding_native-${nodeKey}.node`);
    // Only CUDA failures are remembered (nvcc without cuBLAS or without a GPU is common and a
    // CUDA compile is long); a CPU/Metal failure is retried on the next install.
    const failedMarker = join(treeDir, "cuda-failed");
    const force = process.env.EMBEDDING_SERVER_FORCE_NATIVE === "1";

    if (!force && existsSync(finished)) return { ok: true, node: finished, cached: true };
    if (!force && existsSync(failedMarker)) {
        return { ok: false, reason: readFileSync(failedMarker, "utf8").trim(), remembered: true };
    }

    return withLock(treeDir, async () => {
        if (!force && existsSync(finished)) return { ok: true, node: finished, cached: true };
        const addonSrc = join(treeDir, "addon-src");
        const bin = join(treeDir, "bin");
        for (const s of sources) syncFile(s.content, join(addonSrc, s.rel));
        const patchedFile = join(treeDir, "patched", "llama-context.cpp");
        if (patched) syncFile(Buffer.from(patched), patchedFile);
        else log("llama.cpp's llama-context.cpp differs from the pinned release; building it unpatched (decoders will compute every token's output)");

        const started = Date.now();
        const variant = cuda ? "CUDA" : process.platform === "darwin" ? "Metal" : "CPU";
        log(`building llama.cpp (${variant}) + addon in ${treeDir}${cuda ? " (CUDA kernels can take a long time)" : ""}`);
        const configureArgs = [
            "-S", addonSrc, "-B", bin,
            ...(generator ? ["-G", generator] : []),
            ...cmakeDefines(options),
            `-DLLAMA_CPP_DIR=${src}`,
            `-DEMBEDDING_LLAMA_CONTEXT_CPP=${patched ? patchedFile : ""}`,
            `-DNODE_API_INCLUDE_DIR=${nodeInclude}`,
            `-DNODE_ADDON_API_DIR=${addonApiDir}`,
            "-Wno-dev",
        ];
        if (process.env.CXX) configureArgs.push(`-DCMAKE_CXX_COMPILER=${process.env.CXX}`);
        if (process.env.CC) configureArgs.push(`-DCMAKE_C_COMPILER=${process.env.CC}`);
        const conf = await run(tc.cmake, configureArgs, {
            // a failed CUDA probe is summarised in one line below instead of echoing cmake's errors
            filter: (l) => /^-- (ggml|Using|Including|CUDA|Metal|OpenMP|BLAS|Accelerate|Configuring done|Generating done)/.test(l) || (!cuda && /CMake Error/.test(l)),
            quietErrors: Boolean(cuda),
        });
        if (conf.code !== 0) {
            const reason = `cmake configure failed${cuda ? " with GGML_CUDA=ON" : ""}: ${summarize(conf.tail)}`;
            if (cuda) writeFileSync(failedMarker, `${reason}\n`);
            return { ok: false, reason };
        }
        const b = await run(tc.cmake, ["--build", bin, "--config", "Release", "--target", "embedding_native", "-j", String(buildJobs())]);
        if (b.code !== 0) {
            const reason = `build failed${cuda ? " with GGML_CUDA=ON" : ""}: ${summarize(b.tail)}`;
            if (cuda) writeFileSync(failedMarker, `${reason}\n`);
            return { ok: false, reason };
        }
        const candidates = [join(bin, "embedding_native.node"), join(bin, "Release", "embedding_native.node"), join(bin, "bin", "embedding_native.node")];
        const built = candidates.find((p) => existsSync(p));
        if (!built) return { ok: false, reason: "build finished but embedding_native.node was not produced" };
        mkdirSync(dirname(finished), { recursive: true });
        copyFileSync(built, `${finished}.tmp`);
        renameSync(`${finished}.tmp`, finished);
        log(`built in ${((Date.now() - started) / 1000).toFixed(0)}s`);
        return { ok: true, node: finished, cached: false };
    }, { onWait: (pid) => log(`waiting for another build of the same tree (pid ${pid})`) });
}

export function summarize(tail) {
    const at = tail.findIndex((l) => /CMake Error/.test(l));
    if (at >= 0) {
        // "CMake Error at .../ggml-cuda/CMakeLists.txt:165 (target_link_libraries): Target "ggml-cuda" links to: CUDA::cublas but the target was not found."
        const block = tail.slice(at, at + 5).join(" ").replace(/\s+/g, " ").replace(/\S*\/(?=(ggml|src|common|tools)\/)/g, "");
        return block.replace(/ Possible reasons include:.*$/, "").slice(0, 300);
    }
    const interesting = tail.filter((l) => /error|Error|failed|not found|No CMAKE/i.test(l));
    const pick = (interesting.length ? interesting : tail).slice(-3).map((l) => l.trim()).filter(Boolean);
    return pick.join(" | ").slice(0, 400) || "no output";
}

/** Builds (or reuses) the addon and installs it at native/build/embedding_native.node. */
export async function buildNative() {
    const unavailable = (why) => {
        console.log(`${PREFIX} native engine unavailable (${why}); the server will use the node-llama-cpp engine.`);
        return { ok: false, reason: why };
    };
    if (process.env.EMBEDDING_SERVER_SKIP_NATIVE === "1") return unavailable("EMBEDDING_SERVER_SKIP_NATIVE=1");
    if (process.platform === "win32") return unavailable("the native build is not supported on Windows yet");

    const tc = detectToolchain();
    if (tc.problem) return unavailable(tc.problem);
    const nodeInclude = nodeApiIncludeDir();
    if (!nodeInclude) return unavailable(`Node-API headers not found next to ${process.execPath}`);
    const addonApiDir = nodeAddonApiDir();
    if (!addonApiDir) return unavailable("node-addon-api is not installed");

    let src;
    try {
        src = ensureLlamaSource({ log });
    } catch (err) {
        return unavailable(`llama.cpp source unavailable: ${err.message}`);
    }

    const cuda = detectCuda();
    let result;
    if (cuda) {
        result = await buildVariant({ tc, src, cuda, nodeInclude, addonApiDir });
        if (!result.ok) {
            log(`CUDA build not possible (${result.reason.slice(0, 300)}); building for CPU instead`);
        }
    }
    if (!result?.ok) result = await buildVariant({ tc, src, cuda: undefined, nodeInclude, addonApiDir });
    if (!result.ok) {
        // never leave an addon built from other sources behind
        rmSync(addonOutput, { force: true });
        return unavailable(result.reason);
    }

    installOutput(result.node);
    log(`${result.cached ? "up to date" : "installed"}: ${relative(process.cwd(), addonOutput) || addonOutput}`);
    return { ok: true, node: addonOutput };
}

/**
 * Builds the plain C++ decode loop (native/src/bench/decode_loop.cpp) in the same build tree as
 * the installed addon, so both run the very same llama.cpp objects. For `npm run bench:engine`.
 */
export async function buildDecodeLoop() {
    const result = await buildNative();
    if (!result.ok) throw new Error(`the native addon is not built: ${result.reason}`);
    const built = readFileSync(join(dirname(addonOutput), "embedding_native.source"), "utf8").trim();
    const treeDir = dirname(dirname(built));
    const tc = detectToolchain();
    if (tc.problem) throw new Error(tc.problem);
    const bin = join(treeDir, "bin");
    const b = await withLock(treeDir, () => run(tc.cmake, ["--build", bin, "--config", "Release", "--target", "embedding_decode_loop", "-j", String(buildJobs())]));
    if (b.code !== 0) throw new Error(`building the decode loop failed: ${summarize(b.tail)}`);
    const exe = [join(bin, "embedding_decode_loop"), join(bin, "Release", "embedding_decode_loop")].find((p) => existsSync(p));
    if (!exe) throw new Error("the decode loop was built but not found");
    return exe;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1] === fileURLToPath(import.meta.url)) {
    buildNative()
        .catch((err) => {
            console.log(`${PREFIX} native engine unavailable (${err?.message ?? err}); the server will use the node-llama-cpp engine.`);
        })
        .finally(() => {
            process.exitCode = 0;
        });
}
