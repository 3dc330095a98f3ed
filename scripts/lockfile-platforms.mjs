// Keeps package-lock.json installable on every platform node-llama-cpp supports.
//
// The registry this project is developed against serves only some of node-llama-cpp's
// per-platform binary packages, so `npm install` here writes a lock without the macOS (Metal)
// and Windows ones, and `npm ci` then refuses the lock as out of sync. This script adds the
// missing entries (optional, with their os/cpu), so npm skips them on other platforms and
// fetches them on the platform they are for. test/lockfile.test.ts fails when one is missing.
//
//   node scripts/lockfile-platforms.mjs         add what is missing (idempotent)
import { readFileSync, writeFileSync } from "node:fs";

const PLATFORMS = {
    "linux-arm64": { os: ["linux"], cpu: ["arm64"], libc: ["glibc"] },
    "linux-armv7l": { os: ["linux"], cpu: ["arm"], libc: ["glibc"] },
    "linux-riscv64": { os: ["linux"], cpu: ["riscv64"], libc: ["glibc"] },
    "linux-x64": { os: ["linux"], cpu: ["x64"], libc: ["glibc"] },
    "linux-x64-cuda": { os: ["linux"], cpu: ["x64"], libc: ["glibc"] },
    "linux-x64-cuda-ext": { os: ["linux"], cpu: ["x64"], libc: ["glibc"] },
    "linux-x64-vulkan": { os: ["linux"], cpu: ["x64"], libc: ["glibc"] },
    "mac-arm64-metal": { os: ["darwin"], cpu: ["arm64"] },
    "mac-x64": { os: ["darwin"], cpu: ["x64"] },
    "win-arm64": { os: ["win32"], cpu: ["arm64", "x64"] },
    "win-x64": { os: ["win32"], cpu: ["x64"] },
    "win-x64-cuda": { os: ["win32"], cpu: ["x64"] },
    "win-x64-cuda-ext": { os: ["win32"], cpu: ["x64"] },
    "win-x64-vulkan": { os: ["win32"], cpu: ["x64"] },
};

/** Names of node-llama-cpp's optional platform packages missing from a parsed lock. */
export function missingPlatformPackages(lock) {
    const main = lock.packages["node_modules/node-llama-cpp"];
    if (!main) return [];
    return Object.keys(main.optionalDependencies ?? {}).filter((name) => !lock.packages[`node_modules/${name}`]);
}

export function addMissing(lock) {
    const main = lock.packages["node_modules/node-llama-cpp"];
    const added = [];
    for (const name of missingPlatformPackages(lock)) {
        const platform = PLATFORMS[name.replace("@node-llama-cpp/", "")];
        if (!platform) throw new Error(`unknown node-llama-cpp platform package ${name}: add it to scripts/lockfile-platforms.mjs`);
        lock.packages[`node_modules/${name}`] = {
            version: main.optionalDependencies[name],
            ...platform,
            license: "MIT",
            optional: true,
            engines: { node: ">=20.0.0" },
        };
        added.push(name);
    }
    // npm keeps packages sorted by path; so do we, to keep diffs small.
    lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))));
    return added;
}

if (import.meta.url === `file://${process.argv[1]}`) {
    const path = new URL("../package-lock.json", import.meta.url);
    const lock = JSON.parse(readFileSync(path, "utf8"));
    const added = addMissing(lock);
    if (added.length) writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
    console.log(added.length ? `added ${added.join(", ")}` : "package-lock.json already lists every platform package");
}
