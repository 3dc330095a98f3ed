import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createEngine } from "../../src/engine/createEngine.js";
import { inspectModel } from "../../src/models/inspect.js";
import { quantizeModel } from "../../src/models/quantize.js";
import { ensureTestModel } from "../fixtures/testModels.js";
import { BIN } from "../helpers/spawnServer.js";
import { SAMPLE_TEXTS, cosine } from "../helpers/testServer.js";

const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 600_000 });

describe("inspect", () => {
    it("describes an encoder and a decoder from their headers", async () => {
        const bert = await inspectModel(await ensureTestModel("bert-tiny"), { contextSize: 256 });
        assert.equal(bert.architecture, "bert");
        assert.equal(bert.causal, false);
        assert.equal(bert.dimensions, 128);
        assert.equal(bert.pooling, "mean");
        assert.equal(bert.trainContextLength, 512);
        assert.equal(bert.layers, 2);
        assert.equal(bert.quantization, "F32");
        assert.equal(bert.tokenizer.model, "bert");
        assert.equal(bert.tokenizer.vocabSize, 30522);
        assert.ok(bert.parameters > 4_000_000 && bert.parameters < 5_000_000, `${bert.parameters}`);
        assert.ok(bert.memory.modelBytes > 15e6, "weights are counted");
        assert.equal(bert.memory.contextSize, 256);

        const qwen = await inspectModel(await ensureTestModel("qwen3-tiny"));
        assert.equal(qwen.architecture, "qwen3");
        assert.equal(qwen.causal, true);
        assert.equal(qwen.pooling, "last");
        assert.equal(qwen.tokenizer.pre, "qwen2");
        assert.equal(qwen.tokenizer.addEos, true);
    });

    it("the CLI prints a table, or JSON, and fails clearly on a missing file", async () => {
        const path = await ensureTestModel("bert-tiny");
        const table = cli("inspect", path, "--context", "128");
        assert.equal(table.status, 0, table.stderr);
        for (const re of [/architecture\s+bert \(encoder/, /dimensions\s+128/, /pooling\s+mean/, /quantization\s+F32/, /tokenizer\s+bert/, /memory\s+\d+\.\d\d GiB .* at context 128/]) {
            assert.match(table.stdout, re);
        }
        const json = JSON.parse(cli("inspect", path, "--json").stdout);
        assert.equal(json.dimensions, 128);
        const missing = cli("inspect", "/nonexistent/model.gguf");
        assert.equal(missing.status, 1);
        assert.match(missing.stderr, /nonexistent/);
    });
});

describe("quantize", () => {
    it("F16 -> Q8_0: the output loads and its vectors stay within cosine 0.99 of the input's", async () => {
        const f16 = await ensureTestModel("bert-tiny", { fileType: "F16" });
        const dir = mkdtempSync(join(tmpdir(), "es-quant-"));
        const q8 = join(dir, "bert-tiny-Q8_0.gguf");
        const progress: number[] = [];
        await quantizeModel(f16, q8, { type: "Q8_0", onProgress: (done, total) => progress.push(done / total) });
        assert.ok(progress.length > 5 && progress.at(-1) === 1, "progress reported per tensor");
        assert.equal((await inspectModel(q8)).quantization, "Q8_0");

        const source = await createEngine({ modelPath: f16, engine: "auto" });
        const quantized = await createEngine({ modelPath: q8, engine: "auto" });
        try {
            for (const text of SAMPLE_TEXTS) {
                const [a] = await source.embed([await source.tokenize(text, true)]);
                const [b] = await quantized.embed([await quantized.tokenize(text, true)]);
                const c = cosine(a!, b!);
                assert.ok(c >= 0.99, `"${text}": cosine ${c}`);
            }
        } finally {
            await source.dispose();
            await quantized.dispose();
        }
    });

    it("refuses a missing input and never leaves a partial output", async () => {
        const dir = mkdtempSync(join(tmpdir(), "es-quant-"));
        const res = cli("quantize", join(dir, "missing.gguf"), join(dir, "out.gguf"), "--type", "Q4_0");
        assert.equal(res.status, 1);
        assert.match(res.stderr, /does not exist/);
        const notGguf = join(dir, "not.gguf");
        writeFileSync(notGguf, "this is not a gguf file");
        const bad = cli("quantize", notGguf, join(dir, "out.gguf"), "--type", "Q4_0");
        assert.equal(bad.status, 1);
        assert.match(bad.stderr, /llama-quantize failed/);
        assert.equal(spawnSync("ls", [dir], { encoding: "utf8" }).stdout.includes("out.gguf"), false);
    });
});

describe("convert", () => {
    it("says what to install when Python lacks the converter's packages", () => {
        const dir = mkdtempSync(join(tmpdir(), "es-convert-"));
        mkdirSync(join(dir, "model"));
        writeFileSync(join(dir, "model", "config.json"), "{}");
        const res = cli("convert", join(dir, "model"), "--outfile", join(dir, "out.gguf"));
        const torchPresent = spawnSync("python3", ["-c", "import torch, transformers"]).status === 0;
        if (torchPresent) return; // the converter would run for real; nothing to assert about the message
        assert.equal(res.status, 1);
        assert.match(res.stderr, /pip install -r .*requirements-convert_hf_to_gguf\.txt/);
        const notModel = cli("convert", dir, "--outfile", join(dir, "out.gguf"));
        assert.equal(notModel.status, 1);
        assert.match(notModel.stderr, /no config\.json/);
    });
});
