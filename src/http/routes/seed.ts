import type { FastifyReply } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { InvalidRequestError } from "../../core/errors.js";
import type { EmbedService } from "../../core/embedService.js";
import { cosineSimilarity, toJsonArray } from "../../core/vectors.js";
import { untilAborted } from "../plugins/requestContext.js";
import { sendJson } from "../sendJson.js";
import {
    embedBatchBody,
    embedBatchResponse,
    embedBody,
    embedResponse,
    errorBody,
    similarityBody,
    similarityResponse,
} from "../schemas.js";

const errors = { 400: errorBody, 401: errorBody, 404: errorBody, 413: errorBody, 429: errorBody, 503: errorBody };

/** The original API: /embed, /embed/batch, /similarity. */
export function seedRoutes(service: EmbedService): FastifyPluginAsyncZod {
    return async (app) => {
        app.post(
            "/embed",
            { schema: { tags: ["seed"], summary: "Embed one text", body: embedBody, response: { 200: embedResponse, ...errors } } },
            async (request, reply) => {
                const { text, ...options } = request.body;
                const result = await untilAborted(
                    service.embed({ ...options, inputType: options.input_type, promptName: options.prompt_name, inputs: [text], field: "text", signal: () => request.cancelSignal, admit: request.chargeTokens }),
                    request,
                );
                request.usage = { inputs: 1, tokens: result.totalTokens, model: result.model };
                return sendJson(reply as FastifyReply, `{"embedding":${toJsonArray(result.vectors[0]!)},"dimensions":${result.dimensions},"model":${JSON.stringify(result.model)},"tokens":${result.totalTokens}}`);
            },
        );

        app.post(
            "/embed/batch",
            {
                schema: {
                    tags: ["seed"],
                    summary: "Embed many texts, returned in input order",
                    body: embedBatchBody,
                    response: { 200: embedBatchResponse, ...errors },
                },
            },
            async (request, reply) => {
                const { texts, ...options } = request.body;
                const result = await untilAborted(
                    service.embed({ ...options, inputType: options.input_type, promptName: options.prompt_name, inputs: texts, field: "texts", signal: () => request.cancelSignal, admit: request.chargeTokens }),
                    request,
                );
                request.usage = { inputs: texts.length, tokens: result.totalTokens, model: result.model };
                const embeddings = result.vectors.map(toJsonArray).join(",");
                return sendJson(reply as FastifyReply, `{"embeddings":[${embeddings}],"model":${JSON.stringify(result.model)},"dimensions":${result.dimensions},"tokens":${result.totalTokens}}`);
            },
        );

        app.post(
            "/similarity",
            {
                schema: {
                    tags: ["seed"],
                    summary: "Cosine similarity of two texts, or documents ranked against a query",
                    body: similarityBody,
                    response: { 200: similarityResponse, ...errors },
                },
            },
            async (request) => {
                const { text1, text2, query, documents, model, truncate, dimensions } = request.body;
                const pair = text1 !== undefined || text2 !== undefined;
                const ranking = query !== undefined || documents !== undefined;
                if (pair === ranking) {
                    throw new InvalidRequestError("send either text1 and text2, or query and documents", { param: pair ? "query" : "text1" });
                }
                const common = { model, truncate, dimensions, signal: () => request.cancelSignal, admit: request.chargeTokens };
                if (pair) {
                    if (text1 === undefined) throw new InvalidRequestError("text1: is required", { param: "text1" });
                    if (text2 === undefined) throw new InvalidRequestError("text2: is required", { param: "text2" });
                    const result = await untilAborted(service.embed({ ...common, inputs: [text1, text2], field: "text1" }), request);
                    request.usage = { inputs: 2, tokens: result.totalTokens, model: result.model };
                    return { similarity: cosineSimilarity(result.vectors[0]!, result.vectors[1]!), model: result.model, tokens: result.totalTokens };
                }
                if (query === undefined) throw new InvalidRequestError("query: is required", { param: "query" });
                if (documents === undefined) throw new InvalidRequestError("documents: is required", { param: "documents" });
                // Query and documents get their own prompts, as asymmetric retrieval models expect.
                const [q, docs] = await untilAborted(
                    Promise.all([
                        service.embed({ ...common, inputs: [query], inputType: "query", field: "query" }),
                        service.embed({ ...common, inputs: documents, inputType: "document", field: "documents" }),
                    ]),
                    request,
                );
                const results = docs.vectors
                    .map((v, index) => ({ index, score: cosineSimilarity(q.vectors[0]!, v) }))
                    .sort((a, b) => b.score - a.score || a.index - b.index);
                const tokens = q.totalTokens + docs.totalTokens;
                request.usage = { inputs: documents.length + 1, tokens, model: q.model };
                return { results, model: q.model, tokens };
            },
        );
    };
}
