import { randomUUID } from "node:crypto";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { jsonSchemaTransform, validatorCompiler } from "fastify-type-provider-zod";
import type { Logger } from "pino";
import type { Config } from "../config/schema.js";
import type { EmbedService } from "../core/embedService.js";
import type { ModelRegistry } from "../models/registry.js";
import type { Metrics } from "../observability/metrics.js";
import { registerErrorHandling } from "./errorHandler.js";
import { registerAuth } from "./plugins/auth.js";
import { registerRateLimit, type RateLimitOptions } from "./plugins/rateLimit.js";
import { registerRequestContext } from "./plugins/requestContext.js";
import { adminRoutes } from "./routes/admin.js";
import { openaiRoutes } from "./routes/openai.js";
import { seedRoutes } from "./routes/seed.js";
import { systemRoutes, type Lifecycle } from "./routes/system.js";

export interface AppDeps {
    config: Config;
    registry: ModelRegistry;
    service: EmbedService;
    metrics: Metrics;
    logger: Logger;
    version: string;
    lifecycle: Lifecycle;
    /** Shared stores for rate limits (Redis) when several instances run. */
    rateLimitStores?: Pick<RateLimitOptions, "tokenStore" | "redis">;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Builds the HTTP app. It never listens: `serve` does, and tests use app.inject(). */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
    const { config, registry, service, metrics, logger, version, lifecycle } = deps;
    const app = Fastify({
        loggerInstance: logger as FastifyBaseLogger,
        // requestContext writes one access line per request instead of Fastify's two.
        logController: new LogController({ disableRequestLogging: true }),
        bodyLimit: config.server.bodyLimit,
        trustProxy: config.server.trustProxy,
        genReqId: (req) => {
            const given = req.headers["x-request-id"];
            return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
        },
    }) as unknown as FastifyInstance;

    app.setValidatorCompiler(validatorCompiler);
    // Responses are built by our own code; validating thousands of floats per reply would only cost time.
    app.setSerializerCompiler(() => (data) => JSON.stringify(data));
    app.addHook("onSend", async (request, reply) => {
        void reply.header("x-request-id", request.id);
        // While draining, each finished response closes its keep-alive connection, so close()
        // completes as soon as the last in-flight request does instead of at the drain timeout.
        if (lifecycle.draining) void reply.header("connection", "close");
    });

    registerErrorHandling(app, metrics, config.server.bodyLimit);
    // JSON only: Fastify's built-in text/plain parser would turn a text body into a confusing schema error.
    app.removeContentTypeParser("text/plain");
    registerRequestContext(app, { metrics, timeoutMs: config.server.requestTimeoutMs });
    registerAuth(app, { apiKeys: config.auth.apiKeys, adminKeys: config.auth.adminKeys, metricsPublic: config.metrics.public });
    await registerRateLimit(app, { config: config.rateLimit, metrics, ...deps.rateLimitStores });

    if (config.docs.enabled) {
        await app.register(swagger, {
            openapi: {
                info: { title: "embedding-server", version, description: "Self-hosted text embeddings: seed API and the OpenAI embeddings contract" },
                components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" }, apiKey: { type: "apiKey", in: "header", name: "x-api-key" } } },
                security: [{ bearer: [] }, { apiKey: [] }],
            },
            transform: jsonSchemaTransform,
        });
        await app.register(swaggerUi, { routePrefix: "/docs", uiConfig: { docExpansion: "list" } });
        app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
    }

    const startedAt = Date.now();
    await app.register(systemRoutes({ registry, metrics, lifecycle, version, metricsEnabled: config.metrics.enabled }));
    await app.register(seedRoutes(service));
    await app.register(openaiRoutes(service, registry, startedAt));
    await app.register(adminRoutes(registry));
    return app;
}
