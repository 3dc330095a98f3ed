import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { EmbedInput, EmbedService } from "../../core/embedService.js";
import { ModelNotFoundError } from "../../core/errors.js";
import { toBase64, toJsonArray } from "../../core/vectors.js";
import type { ModelRegistry } from "../../models/registry.js";
import { untilAborted } from "../plugins/requestContext.js";
import { sendJson } from "../sendJson.js";
import { errorBody, openaiEmbeddingsBody, openaiEmbeddingsResponse, openaiModelsResponse, type OpenAIEmbeddingsBody } from "../schemas.js";

const errors = { 400: errorBody, 401: errorBody, 404: errorBody, 413: errorBody, 429: errorBody, 503: errorBody };

/** OpenAI allows one text, many texts, one token array, or many token arrays. */
function inputsOf(input: OpenAIEmbeddingsBody["input"]): EmbedInput[] {
    if (typeof input === "string") return [input];
    if (input.length === 0) return [];
    if (typeof input[0] === "number") return [input as number[]];
    return input as EmbedInput[];
}

/** The OpenAI embeddings contract, so the openai SDK, LangChain and LlamaIndex work unchanged. */
export function openaiRoutes(service: EmbedService, registry: ModelRegistry, startedAt: number): FastifyPluginAsyncZod {
    return async (app) => {
        const handler = async (request: FastifyRequest<{ Body: OpenAIEmbeddingsBody }>, reply: FastifyReply) => {
            const body = request.body;
            const inputs = inputsOf(body.input);
            const result = await untilAborted(
                service.embed({
                    model: body.model,
                    inputs,
                    inputType: body.input_type,
                    promptName: body.prompt_name,
                    truncate: body.truncate,
                    normalize: body.normalize,
                    dimensions: body.dimensions,
                    field: "input",
                    signal: () => request.cancelSignal,
                    admit: request.chargeTokens,
                }),
                request,
            );
            request.usage = { inputs: inputs.length, tokens: result.totalTokens, model: result.model };
            // Written by hand: the vectors are most of the body, and toJsonArray is much faster than
            // building number arrays for JSON.stringify. The shape is openaiEmbeddingsResponse.
            const encode = body.encoding_format === "base64" ? (v: Float32Array) => `"${toBase64(v)}"` : toJsonArray;
            const data = result.vectors.map((v, index) => `{"object":"embedding","index":${index},"embedding":${encode(v)}}`).join(",");
            const usage = `{"prompt_tokens":${result.totalTokens},"total_tokens":${result.totalTokens}}`;
            return sendJson(reply as FastifyReply, `{"object":"list","data":[${data}],"model":${JSON.stringify(result.model)},"usage":${usage}}`);
        };
        const schema = {
            tags: ["openai"],
            summary: "OpenAI-compatible embeddings",
            body: openaiEmbeddingsBody,
            response: { 200: openaiEmbeddingsResponse, ...errors },
        };
        app.post("/v1/embeddings", { schema }, handler);
        // Clients configured with a base URL lacking /v1 call this path.
        app.post("/embeddings", { schema: { ...schema, hide: true } }, handler);

        const modelEntry = (h: ReturnType<ModelRegistry["list"]>[number]) => ({
            id: h.id,
            object: "model" as const,
            created: Math.floor(startedAt / 1000),
            owned_by: "embedding-server",
            state: h.state,
        });

        app.get("/v1/models", { schema: { tags: ["openai"], summary: "List models", response: { 200: openaiModelsResponse, 401: errorBody } } }, async () => ({
            object: "list" as const,
            data: registry.list().map(modelEntry),
        }));

        app.get(
            "/v1/models/:model",
            {
                schema: {
                    tags: ["openai"],
                    summary: "One model",
                    params: z.object({ model: z.string().max(200) }),
                    response: { 200: openaiModelsResponse.shape.data.element, 401: errorBody, 404: errorBody },
                },
            },
            async (request) => {
                const handle = registry.list().find((h) => h.id === request.params.model || h.aliases.includes(request.params.model));
                if (!handle) throw new ModelNotFoundError(`model "${request.params.model}" does not exist`, { param: "model" });
                return modelEntry(handle);
            },
        );
    };
}
