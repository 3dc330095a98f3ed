// Locates the llama.cpp source tree the project builds against: LLAMA_CPP_DIR when set,
// otherwise the release node-llama-cpp pins, cloned once from its bundled git bundle.
// Plain ESM JavaScript because it runs during `npm ci`, before TypeScript is compiled.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";

const require = createRequire(import.meta.url);

/** User-level cache shared by every clone, so fresh clones reuse the source and builds. */
export function userCacheRoot() {
    if (process.env.EMBEDDING_SERVER_BUILD_CACHE) return resolve(process.env.EMBEDDING_SERVER_BUILD_CACHE);
    const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
    return join(base, "embedding-server");
}

export function nodeLlamaCppDir() {
    // The package's "exports" hide package.json, so walk up from its main entry.
    let dir = dirname(require.resolve("node-llama-cpp"));
    while (!existsSync(join(dir, "package.json")) || !existsSync(join(dir, "llama"))) {
        const parent = dirname(dir);
        if (parent === dir) throw new Error("node-llama-cpp is not installed");
        dir = parent;
    }
    return dir;
}

/** Tag and bundle identity of the pinned llama.cpp release. */
export function pinnedRelease() {
    const llamaDir = join(nodeLlamaCppDir(), "llama");
    const info = JSON.parse(readFileSync(join(llamaDir, "llama.cpp.info.json"), "utf8"));
    const bundle = join(llamaDir, "gitRelease.bundle");
    const size = statSync(bundle).size;
    return { tag: String(info.tag), bundle, id: `${info.tag}-${size}` };
}

/** Returns the absolute path of a llama.cpp source tree, cloning the pinned bundle if needed. */
export function ensureLlamaSource({ log = () => {} } = {}) {
    if (process.env.LLAMA_CPP_DIR) {
        const dir = resolve(process.env.LLAMA_CPP_DIR);
        if (!existsSync(join(dir, "include", "llama.h"))) throw new Error(`LLAMA_CPP_DIR=${dir} has no include/llama.h`);
        return dir;
    }
    const release = pinnedRelease();
    const dest = join(userCacheRoot(), "src", `llama.cpp-${release.id}`);
    if (existsSync(join(dest, ".complete"))) return dest;
    mkdirSync(dirname(dest), { recursive: true });
    const tmp = `${dest}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    log(`cloning llama.cpp ${release.tag} from node-llama-cpp's bundle`);
    execFileSync("git", ["-c", "advice.detachedHead=false", "clone", "--quiet", release.bundle, tmp], { stdio: ["ignore", "ignore", "inherit"] });
    writeFileSync(join(tmp, ".complete"), release.id);
    try {
        renameSync(tmp, dest);
    } catch (err) {
        // Another process finished the same clone first; theirs is as good as ours.
        rmSync(tmp, { recursive: true, force: true });
        if (!existsSync(join(dest, ".complete"))) throw err;
    }
    return dest;
}

if (import.meta.url === `file://${process.argv[1]}`) {
    console.log(ensureLlamaSource({ log: (m) => console.error(m) }));
}
