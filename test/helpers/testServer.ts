import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { loadConfig } from "../../src/config/loader.js";
import { cosineSimilarity } from "../../src/core/vectors.js";
import type { Config, ConfigInput } from "../../src/config/schema.js";
import { createLogger } from "../../src/observability/logger.js";
import type { EngineLoader } from "../../src/models/registry.js";
import { createServer, type EmbeddingServer } from "../../src/server.js";
import { ensureTestModel } from "../fixtures/testModels.js";

export type Preset = Parameters<typeof ensureTestModel>[0];

export interface TestServerOptions {
    /** Models to serve: presets, or explicit configs. */
    models?: { preset: Preset; id?: string; [key: string]: unknown }[];
    config?: Omit<Partial<ConfigInput>, "models">;
    loader?: EngineLoader;
    /** Don't wait for the models to load. */
    noLoad?: boolean;
}

export interface TestServer extends EmbeddingServer {
    config: Config;
    inject: FastifyInstance["inject"];
    post(url: string, body: unknown, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
}

/** Builds the real app over real generated models; no port is opened. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
    const models = await Promise.all(
        (options.models ?? [{ preset: "bert-tiny", id: "bert-tiny" }]).map(async ({ preset, ...rest }) => ({
            path: await ensureTestModel(preset),
            ...rest,
        })),
    );
    const config = loadConfig({
        env: {},
        base: { ...options.config, models, server: { logLevel: process.env.TEST_LOG_LEVEL ?? "silent", ...(options.config?.server ?? {}) } } as Record<string, unknown>,
    });
    const server = await createServer({ config, logger: createLogger(config.server.logLevel), loader: options.loader });
    if (!options.noLoad) await server.loadModels();
    return {
        ...server,
        config,
        inject: server.app.inject.bind(server.app),
        post: (url, body, headers = {}) =>
            server.app.inject({ method: "POST", url, payload: body as object, headers: { "content-type": "application/json", ...headers } }),
    };
}

/** Cosine similarity, the same function the server uses. */
export const cosine = cosineSimilarity;

export function norm(a: ArrayLike<number>): number {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
    return Math.sqrt(s);
}

/** Texts of varied length and content for batch-vs-single checks. */
export const SAMPLE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Embeddings map text to vectors.",
    "llama.cpp runs GGUF models on CPUs and GPUs alike, including Apple Silicon with Metal.",
    "hi",
    "Semantic search ranks documents by the cosine similarity between the query vector and each document vector, which makes retrieval-augmented generation possible without sending data to a cloud API.",
    "Ünïcödé, emoji 🚀 and 中文 text.",
    "A",
    "Paris is the capital of France.",
];
