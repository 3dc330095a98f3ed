import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { ModelRegistry } from "../../models/registry.js";
import type { Metrics } from "../../observability/metrics.js";
import { errorBody } from "../schemas.js";

export interface Lifecycle {
    /** Set when shutdown starts: /health turns 503 so load balancers move away. */
    draining: boolean;
}

const healthResponse = z.object({
    status: z.enum(["ok", "loading", "draining", "failed"]),
    models: z.array(z.object({ id: z.string(), state: z.string() })),
});

/** /health, /info and /metrics. */
export function systemRoutes(deps: { registry: ModelRegistry; metrics: Metrics; lifecycle: Lifecycle; version: string; metricsEnabled: boolean }): FastifyPluginAsyncZod {
    const { registry, metrics, lifecycle, version } = deps;
    return async (app) => {
        app.get(
            "/health",
            {
                config: { access: "public", rateLimit: false },
                schema: { tags: ["system"], summary: "200 when every model is ready, 503 while loading or draining", security: [], response: { 200: healthResponse, 503: healthResponse } },
            },
            async (_request, reply) => {
                const models = registry.list().map((h) => ({ id: h.id, state: h.state }));
                const failed = models.some((m) => m.state === "failed");
                const status = lifecycle.draining ? "draining" : registry.ready ? "ok" : failed ? "failed" : "loading";
                return reply.code(status === "ok" ? 200 : 503).send({ status, models });
            },
        );

        app.get("/info", { schema: { tags: ["system"], summary: "Models, engine, backend and version" } }, async () => ({
            version,
            node: process.version,
            platform: `${process.platform}-${process.arch}`,
            models: registry.list().map((h) => ({
                id: h.id,
                aliases: h.aliases,
                state: h.state,
                ...(h.engine
                    ? {
                          architecture: h.engine.info.architecture,
                          dimensions: h.engine.info.dimensions,
                          pooling: h.engine.info.pooling,
                          context_length: h.engine.info.contextLength,
                          train_context_length: h.engine.info.trainContextLength,
                          quantization: h.engine.info.fileType,
                          parameters: h.engine.info.parameterCount,
                          file_size_bytes: h.engine.info.fileSizeBytes,
                          vocab_size: h.engine.info.vocabSize,
                          causal: h.engine.info.causal,
                          max_batch_tokens: h.engine.maxBatchTokens,
                          max_batch_sequences: h.engine.maxBatchSequences,
                          load_seconds: h.loadSeconds,
                          backend: h.engine.backend,
                      }
                    : {}),
                prompts: h.config.prompts,
                ...(h.error ? { error: h.error } : {}),
            })),
        }));

        if (deps.metricsEnabled) {
            app.get("/metrics", { config: { access: "metrics", rateLimit: false }, schema: { tags: ["system"], summary: "Prometheus metrics", hide: false } }, async (_request, reply) => {
                registry.updateGauges();
                return reply.type(metrics.contentType).send(await metrics.render());
            });
        }
    };
}
