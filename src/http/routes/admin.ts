import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { modelConfigSchema } from "../../config/schema.js";
import type { ModelRegistry } from "../../models/registry.js";
import { errorBody } from "../schemas.js";

const modelId = z.string().min(1).max(200).regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, "letters, digits and . _ : / - only");
const errors = { 400: errorBody, 401: errorBody, 403: errorBody, 404: errorBody, 500: errorBody, 503: errorBody, 507: errorBody };

export function describeModels(registry: ModelRegistry) {
    return registry.list().map((h) => ({
        id: h.id,
        aliases: h.aliases,
        state: h.state,
        path: h.config.path,
        lazy: h.config.lazy,
        memory_estimate_bytes: h.memoryBytes,
        load_seconds: h.loadSeconds,
        engine: h.engine?.backend.engine,
        ...(h.error ? { error: h.error } : {}),
    }));
}

/** Hot swap: add, replace and remove models while serving. Admin key only. */
export function adminRoutes(registry: ModelRegistry): FastifyPluginAsyncZod {
    return async (app) => {
        app.get("/admin/models", { config: { access: "admin" }, schema: { tags: ["admin"], summary: "Models with their states" } }, async () => ({
            models: describeModels(registry),
        }));

        app.put(
            "/admin/models/:id",
            {
                config: { access: "admin" },
                schema: {
                    tags: ["admin"],
                    summary: "Add a model, or replace it with zero downtime: the new one loads beside the old, traffic switches at once, the old drains",
                    params: z.object({ id: modelId }),
                    body: modelConfigSchema.omit({ id: true }),
                    response: { 200: z.object({ id: z.string(), replaced: z.boolean(), state: z.string() }), ...errors },
                },
            },
            async (request) => {
                const result = await registry.put({ ...request.body, id: request.params.id });
                request.log.info({ model: result.id, replaced: result.replaced }, "admin: model put");
                return { ...result, state: registry.resolve(result.id).state };
            },
        );

        app.delete(
            "/admin/models/:id",
            {
                config: { access: "admin" },
                schema: {
                    tags: ["admin"],
                    summary: "Remove a model after its in-flight requests finish",
                    params: z.object({ id: modelId }),
                    response: { 200: z.object({ id: z.string(), removed: z.boolean() }), ...errors },
                },
            },
            async (request) => {
                await registry.remove(request.params.id);
                request.log.info({ model: request.params.id }, "admin: model removed");
                return { id: request.params.id, removed: true };
            },
        );
    };
}
