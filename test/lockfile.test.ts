import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
// @ts-expect-error plain ESM script without type declarations
import { missingPlatformPackages } from "../scripts/lockfile-platforms.mjs";

describe("package-lock.json", () => {
    it("lists every node-llama-cpp platform package, so `npm ci` works on macOS, Linux and Windows", () => {
        const lock = JSON.parse(readFileSync("package-lock.json", "utf8"));
        assert.deepEqual(missingPlatformPackages(lock), [], "run `node scripts/lockfile-platforms.mjs`");
        const metal = lock.packages["node_modules/@node-llama-cpp/mac-arm64-metal"];
        assert.deepEqual(metal.os, ["darwin"]);
        assert.deepEqual(metal.cpu, ["arm64"]);
        assert.equal(metal.optional, true);
    });
});
