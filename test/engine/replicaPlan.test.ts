import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { blockMacsPerToken, chooseReplicas, decideReplicas, SMALL_MODEL_MACS_PER_TOKEN, type ReplicaInputs } from "../../src/engine/replicaPlan.js";
import { ensureTestModel } from "../fixtures/testModels.js";

const smallCpu: ReplicaInputs = {
    configured: "auto",
    engine: "auto",
    gpuLayers: "auto",
    macsPerToken: 10.6e6,
    native: { available: true, gpu: false },
    cores: 2,
};

describe("replicas: auto", () => {
    it("counts the multiply-accumulates of the block matrices from the GGUF", async () => {
        // bert-tiny: 2 layers x (4 x 128^2 attention + 2 x 128 x 512 feed-forward)
        assert.equal(await blockMacsPerToken(await ensureTestModel("bert-tiny")), 2 * (4 * 128 * 128 + 2 * 128 * 512));
        // qwen3-tiny: 2 layers x (q 128x128 + k,v 128x64 + o 128x128 + gate/up/down 3 x 128 x 256)
        assert.equal(await blockMacsPerToken(await ensureTestModel("qwen3-tiny")), 2 * (128 * 128 * 2 + 128 * 64 * 2 + 3 * 128 * 256));
    });

    it("runs two copies of a small model on the native CPU engine", () => {
        const d = decideReplicas(smallCpu);
        assert.equal(d.replicas, 2);
        assert.match(d.reason, /2 copies of 1 thread beat 1 of 2 threads/);
    });

    it("keeps one copy wherever a second would not pay", () => {
        const cases: [Partial<ReplicaInputs>, RegExp][] = [
            [{ macsPerToken: SMALL_MODEL_MACS_PER_TOKEN + 1 }, /MACs per token: one copy/],
            [{ native: { available: true, gpu: true } }, /GPU/],
            [{ native: { available: false, gpu: false } }, /node-llama-cpp/],
            [{ engine: "node-llama-cpp" }, /node-llama-cpp/],
            [{ threads: 4 }, /model.threads is set/],
            [{ cores: 1 }, /1 core/],
        ];
        for (const [change, reason] of cases) {
            const d = decideReplicas({ ...smallCpu, ...change });
            assert.equal(d.replicas, 1, JSON.stringify(change));
            assert.match(d.reason, reason);
        }
        // A GPU build with the model kept on the CPU is a CPU engine.
        assert.equal(decideReplicas({ ...smallCpu, native: { available: true, gpu: true }, gpuLayers: 0 }).replicas, 2);
    });

    it("never overrides a configured number", () => {
        assert.deepEqual(decideReplicas({ ...smallCpu, configured: 1 }), { replicas: 1, reason: "" });
        assert.deepEqual(decideReplicas({ ...smallCpu, configured: 3, macsPerToken: 1e12 }), { replicas: 3, reason: "" });
    });
});

describe("chooseReplicas", () => {
    it("leaves an unreadable file to the engine's own error", async () => {
        const d = await chooseReplicas({ configured: "auto", engine: "auto", gpuLayers: "auto", modelPath: new URL(import.meta.url).pathname });
        assert.equal(d.replicas, 1);
        assert.match(d.reason, /could not be read/);
    });

    it("does not read the file when the number is configured", async () => {
        assert.deepEqual(await chooseReplicas({ configured: 2, engine: "auto", gpuLayers: "auto", modelPath: "/nonexistent.gguf" }), { replicas: 2, reason: "" });
    });
});
