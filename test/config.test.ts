import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CONFIG_KEYS } from "../src/config/keys.js";
import { ConfigError, loadConfig } from "../src/config/loader.js";

const dir = mkdtempSync(join(tmpdir(), "es-config-"));
function file(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
}

function expectConfigError(fn: () => unknown, ...patterns: RegExp[]): ConfigError {
    try {
        fn();
    } catch (err) {
        assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
        for (const p of patterns) assert.match(err.message, p);
        return err;
    }
    assert.fail("expected a ConfigError");
}

describe("config loading", () => {
    it("applies defaults", () => {
        const config = loadConfig({ env: {}, flags: { "model.path": "m.gguf" } });
        assert.equal(config.server.host, "127.0.0.1");
        assert.equal(config.server.port, 8080);
        assert.equal(config.models.length, 1);
        assert.equal(config.models[0]!.path, "m.gguf");
        assert.equal(config.models[0]!.gpuLayers, "auto");
        assert.equal(config.limits.truncate, false);
        assert.deepEqual(config.auth.apiKeys, []);
    });

    it("reads YAML and JSON files", () => {
        const yaml = file("a.yaml", "server:\n  port: 9000\nmodel:\n  path: ./x.gguf\n  id: x\n  prompts:\n    query: 'search_query: '\n");
        const cy = loadConfig({ file: yaml, env: {} });
        assert.equal(cy.server.port, 9000);
        assert.equal(cy.models[0]!.id, "x");
        assert.equal(cy.models[0]!.prompts.query, "search_query: ");
        const json = file("a.json", JSON.stringify({ models: [{ path: "a.gguf" }, { path: "b.gguf", id: "b" }], limits: { truncate: true } }));
        const cj = loadConfig({ file: json, env: {} });
        assert.equal(cj.models.length, 2);
        assert.equal(cj.limits.truncate, true);
    });

    it("precedence is flag > env > file > default", () => {
        const path = file("p.yaml", "server:\n  port: 9000\n  host: 0.0.0.0\nmodel:\n  path: file.gguf\nlimits:\n  maxInputsPerRequest: 10\n");
        const fileOnly = loadConfig({ file: path, env: {} });
        assert.equal(fileOnly.server.port, 9000);
        const env = { EMBEDDING_SERVER_PORT: "9100", EMBEDDING_SERVER_MODEL: "env.gguf", EMBEDDING_SERVER_LIMITS_MAX_INPUTS_PER_REQUEST: "20" };
        const withEnv = loadConfig({ file: path, env });
        assert.equal(withEnv.server.port, 9100);
        assert.equal(withEnv.models[0]!.path, "env.gguf");
        assert.equal(withEnv.limits.maxInputsPerRequest, 20);
        assert.equal(withEnv.server.host, "0.0.0.0", "untouched keys keep the file's value");
        const withFlags = loadConfig({ file: path, env, flags: { "server.port": "9200", "limits.maxInputsPerRequest": 30 } });
        assert.equal(withFlags.server.port, 9200);
        assert.equal(withFlags.limits.maxInputsPerRequest, 30);
        assert.equal(withFlags.models[0]!.path, "env.gguf");
    });

    it("EMBEDDING_SERVER_API_KEYS takes a comma list", () => {
        const config = loadConfig({ env: { EMBEDDING_SERVER_API_KEYS: "key-one-123, key-two-456", EMBEDDING_SERVER_MODEL: "m.gguf" } });
        assert.deepEqual(config.auth.apiKeys, ["key-one-123", "key-two-456"]);
    });

    it("every schema key has an env variable and a flag", () => {
        const paths = CONFIG_KEYS.map((k) => k.path);
        for (const p of ["server.port", "server.host", "model.path", "model.contextSize", "model.batchSize", "model.threads", "model.gpuLayers", "model.pooling", "limits.maxQueuedTokens", "auth.apiKeys"]) {
            assert.ok(paths.includes(p), `missing ${p}`);
        }
        const ctx = CONFIG_KEYS.find((k) => k.path === "model.contextSize")!;
        assert.equal(ctx.env, "EMBEDDING_SERVER_MODEL_CONTEXT_SIZE");
        assert.equal(ctx.flag, "model.context-size");
        const fromEnv = loadConfig({ env: { EMBEDDING_SERVER_MODEL_PATH: "m.gguf", EMBEDDING_SERVER_MODEL_GPU_LAYERS: "12", EMBEDDING_SERVER_MODEL_POOLING: "cls" } });
        assert.equal(fromEnv.models[0]!.gpuLayers, 12);
        assert.equal(fromEnv.models[0]!.pooling, "cls");
    });

    it("a bad value names the key, the value and what is allowed", () => {
        expectConfigError(() => loadConfig({ env: {}, flags: { "model.path": "m.gguf", "server.port": "99999" } }), /server\.port/, /99999/, /65535/);
        expectConfigError(() => loadConfig({ env: { EMBEDDING_SERVER_PORT: "eighty" }, flags: { "model.path": "m" } }), /server\.port/, /EMBEDDING_SERVER_PORT/, /"eighty"/, /expected a number/);
        expectConfigError(() => loadConfig({ env: {}, flags: { "model.path": "m", "model.pooling": "max" } }), /models\.0\.pooling/, /"max"/, /mean/);
        expectConfigError(() => loadConfig({ env: {}, flags: { "model.path": "m", "limits.truncate": "maybe" } }), /limits\.truncate/, /true or false/);
    });

    it("model.replicas takes auto (the default) or 1-64, and a bad value says so", () => {
        assert.equal(loadConfig({ env: {}, flags: { "model.path": "m" } }).models[0]!.replicas, "auto");
        assert.equal(loadConfig({ env: {}, flags: { "model.path": "m", "model.replicas": "2" } }).models[0]!.replicas, 2);
        assert.equal(loadConfig({ env: { EMBEDDING_SERVER_MODEL_REPLICAS: "auto" }, flags: { "model.path": "m" } }).models[0]!.replicas, "auto");
        expectConfigError(() => loadConfig({ env: {}, flags: { "model.path": "m", "model.replicas": "0" } }), /models\.0\.replicas/, /= 0/, />=1/);
        expectConfigError(() => loadConfig({ env: {}, flags: { "model.path": "m", "model.replicas": "65" } }), /models\.0\.replicas/, /<=64/);
        expectConfigError(() => loadConfig({ env: {}, flags: { "model.path": "m", "model.replicas": "many" } }), /models\.0\.replicas/, /"many"/, /whole number or "auto"/);
        expectConfigError(() => loadConfig({ file: file("r.yaml", "model:\n  path: m\n  replicas: lots\n"), env: {} }), /models\.0\.replicas/, /whole number or "auto"/);
        expectConfigError(() => loadConfig({ env: {}, flags: { "model.path": "m", "model.gpuLayers": "most" } }), /models\.0\.gpuLayers/, /whole number or "auto" or "max"/);
    });

    it("no model is a clear error", () => {
        expectConfigError(() => loadConfig({ env: {} }), /models/, /model\.path|--model/);
    });

    it("unknown keys are refused by name", () => {
        const path = file("u.yaml", "model:\n  path: m.gguf\nserver:\n  prot: 80\n");
        expectConfigError(() => loadConfig({ file: path, env: {} }), /server/, /prot/);
    });

    it("secrets never appear in error messages", () => {
        const err = expectConfigError(() => loadConfig({ env: {}, flags: { "model.path": "m", "auth.apiKeys": ["short"] } }), /auth\.apiKeys/, /8 characters/);
        assert.doesNotMatch(err.message, /short"/);
    });

    it("unreadable and malformed files are reported", () => {
        expectConfigError(() => loadConfig({ file: join(dir, "missing.yaml"), env: {} }), /cannot be read/, /ENOENT/);
        expectConfigError(() => loadConfig({ file: file("bad.yaml", "server: [unclosed\n"), env: {} }), /not valid YAML/);
        expectConfigError(() => loadConfig({ file: file("bad.json", "{nope"), env: {} }), /not valid JSON/);
    });

    it("every shipped example config is valid", () => {
        const configs = readdirSync("configs").filter((f) => /\.(ya?ml|json)$/.test(f));
        assert.ok(configs.length >= 4, "examples for 16/32/64 GB Apple Silicon and Linux CPU");
        for (const f of configs) {
            const config = loadConfig({ file: join("configs", f), env: {} });
            assert.ok(config.models.length >= 1, f);
        }
    });
});

describe("default model", () => {
    it("applies when nothing names a model, and model.* keys tune it", async () => {
        const { DEFAULT_MODEL } = await import("../src/models/defaultModel.js");
        const base = { models: [DEFAULT_MODEL] };
        const plain = loadConfig({ env: {}, base });
        assert.equal(plain.models[0]!.path, "hf:Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0");
        const tuned = loadConfig({ env: { EMBEDDING_SERVER_MODEL_CONTEXT_SIZE: "512" }, base });
        assert.equal(tuned.models[0]!.path, DEFAULT_MODEL.path);
        assert.equal(tuned.models[0]!.contextSize, 512);
        const replaced = loadConfig({ env: {}, base, flags: { "model.path": "mine.gguf" } });
        assert.equal(replaced.models[0]!.path, "mine.gguf");
        assert.equal(replaced.models[0]!.id, undefined, "a new path does not inherit the default's id");
        assert.deepEqual(replaced.models[0]!.prompts, {});
        const list = loadConfig({ env: {}, base, file: file("list.yaml", "models:\n  - path: a.gguf\n") });
        assert.equal(list.models.length, 1);
        assert.equal(list.models[0]!.path, "a.gguf");
        assert.equal(list.models[0]!.id, undefined, "a models: list replaces the default entirely");
    });
});

describe("exposure warning", () => {
    it("warns when listening beyond loopback without keys", async () => {
        const { openHostWarning } = await import("../src/cli/commands/serve.js");
        assert.equal(openHostWarning("127.0.0.1", []), undefined);
        assert.equal(openHostWarning("localhost", []), undefined);
        assert.equal(openHostWarning("::1", []), undefined);
        assert.equal(openHostWarning("0.0.0.0", ["key-123456789"]), undefined);
        assert.match(openHostWarning("0.0.0.0", []) ?? "", /0\.0\.0\.0 with no API keys/);
        assert.match(openHostWarning("192.168.1.5", []) ?? "", /--api-key/);
    });
});
