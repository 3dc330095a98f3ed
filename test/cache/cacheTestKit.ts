import type { ModelConfig } from "../../src/config/schema.js";
import { computeFileIdentity, setFileIdentity } from "../../src/cache/fileIdentity.js";
import { LlamaCppEngine } from "../../src/engine/llamaCppEngine.js";
import type { EngineLoader } from "../../src/models/registry.js";
import { FaultyEngine } from "../helpers/faultyEngine.js";
import type { TestServer } from "../helpers/testServer.js";

/**
 * A loader that wraps each engine in a FaultyEngine (to count what reaches the engine) and
 * records the file identity, as the default loader does, so the cache serves it.
 */
export function countingLoader(engines: Map<string, FaultyEngine>): EngineLoader {
    return async (model: ModelConfig) => {
        const engine = new FaultyEngine(await LlamaCppEngine.create({ modelPath: model.path }));
        setFileIdentity(engine, await computeFileIdentity(model.path));
        engines.set(model.id ?? model.path, engine);
        return engine;
    };
}

/** Sequences that reached the engine. */
export function engineSequences(engine: FaultyEngine): number {
    return engine.batches.reduce((n, b) => n + b.length, 0);
}

/** One sample of a Prometheus series, e.g. metric(text, 'embedding_cache_hits_total{layer="memory"}'); 0 when absent. */
export function metricValue(text: string, series: string): number {
    for (const line of text.split("\n")) {
        if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
    }
    return 0;
}

export async function metrics(server: TestServer): Promise<string> {
    return (await server.inject({ method: "GET", url: "/metrics" })).body;
}

/** POST /v1/embeddings with base64 vectors (exact float32 bytes); asserts 200. */
export async function embedBase64(server: TestServer, body: Record<string, unknown>): Promise<string[]> {
    const res = await server.post("/v1/embeddings", { encoding_format: "base64", ...body });
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${res.body}`);
    return (res.json() as { data: { embedding: string }[] }).data.map((d) => d.embedding);
}
