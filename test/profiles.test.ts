import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadProfile, withQuantization } from "../src/config/profiles.js";
import { ensureTestModel } from "./fixtures/testModels.js";
import { spawnServer } from "./helpers/spawnServer.js";

const GiB = 2 ** 30;

describe("hardware profiles", () => {
    it("auto picks by memory and explains itself", () => {
        const mac16 = loadProfile("auto", { totalMemoryBytes: 16 * GiB, backend: "metal" });
        assert.equal(mac16.name, "16gb");
        assert.equal(mac16.quantization, "Q4_0");
        assert.match(mac16.explanation, /detected 16\.0 GiB RAM and metal backend/);
        const mac32 = loadProfile("auto", { totalMemoryBytes: 32 * GiB, backend: "metal" });
        assert.equal(mac32.name, "32gb");
        assert.equal(mac32.quantization, "Q8_0");
        const mac96 = loadProfile("auto", { totalMemoryBytes: 96 * GiB, backend: "metal" });
        assert.equal(mac96.name, "64gb");
        assert.equal(mac96.quantization, "F16");
        assert.equal((mac96.layer.model as Record<string, unknown>).gpuLayers, "max");
    });

    it("on a CPU it keeps 8-bit weights and offloads nothing", () => {
        const cpu = loadProfile("64gb", { totalMemoryBytes: 128 * GiB, backend: "cpu" });
        assert.equal(cpu.quantization, "Q8_0");
        assert.equal((cpu.layer.model as Record<string, unknown>).gpuLayers, 0);
        assert.match(cpu.explanation, /requested with --profile 64gb/);
    });

    it("rewrites only hf: specs with a quantization tag", () => {
        assert.equal(withQuantization("hf:Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0", "Q4_0"), "hf:Qwen/Qwen3-Embedding-0.6B-GGUF:Q4_0");
        assert.equal(withQuantization("./model.gguf", "Q4_0"), "./model.gguf");
        assert.equal(withQuantization("hf:user/repo/file.gguf", "Q4_0"), "hf:user/repo/file.gguf");
    });

    it("serve --profile tunes a user's model and logs its choice in one line", async () => {
        const model = await ensureTestModel("bert-tiny");
        const server = await spawnServer(["--profile", "16gb", "--model", model]);
        try {
            const line = server.logs.find((l) => typeof l.msg === "string" && l.msg.startsWith("profile 16gb"));
            assert.ok(line, "one log line explains the profile");
            assert.match(String(line.msg), /Q4_0 weights, context 4096, batch 2048, 8 sequences/);
            const info = (await (await fetch(`${server.url}/info`)).json()) as { models: { max_batch_sequences: number; path?: string }[] };
            assert.equal(info.models[0]!.max_batch_sequences, 8, "maxSequences from the profile");
        } finally {
            await server.stop();
        }
    });

    it("an unknown profile is refused by name", async () => {
        const { spawnSync } = await import("node:child_process");
        const { BIN } = await import("./helpers/spawnServer.js");
        const res = spawnSync(process.execPath, [BIN, "serve", "--profile", "8gb"], { encoding: "utf8" });
        assert.notEqual(res.status, 0);
        assert.match(res.stderr, /profile/);
        assert.match(res.stderr, /16gb/);
    });
});
