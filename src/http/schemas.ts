import { z } from "zod";

/**
 * Request and response schemas. The same objects validate requests (fastify-type-provider-zod)
 * and generate /openapi.json, so the docs cannot drift from what the server accepts.
 */

const text = z.string({ error: "must be a string" });
const tokenId = z.number({ error: "must be a token id (integer)" }).int("must be an integer token id").min(0, "token ids are never negative");
const tokenIds = z.array(tokenId, { error: "must be an array of token ids" });

const modelName = z
    .string({ error: "must be a string" })
    .max(200, "must be at most 200 characters")
    .describe("Model id or alias; the default model when absent");

const common = {
    model: modelName.optional(),
    input_type: z.enum(["query", "document"], { error: 'must be "query" or "document"' }).optional().describe("Applies the model's query or document prompt"),
    prompt_name: z.string({ error: "must be a string" }).max(200).optional().describe("Applies a named prompt from the model's config"),
    truncate: z.boolean({ error: "must be true or false" }).optional().describe("Cut inputs longer than the context instead of refusing them"),
    normalize: z.boolean({ error: "must be true or false" }).optional().describe("L2-normalise vectors (default true)"),
    dimensions: z
        .number({ error: "must be an integer" })
        .int("must be an integer")
        .min(1, "must be at least 1")
        .optional()
        .describe("Keep the first N dimensions (Matryoshka), renormalised"),
};

export const errorBody = z
    .object({
        error: z.object({
            message: z.string(),
            type: z.string(),
            code: z.string(),
            param: z.string().nullable(),
        }),
    })
    .describe("Every error, on every route");

// ---- seed API ----

export const embedBody = z.object({ text: text.describe("Text to embed"), ...common });
export const embedResponse = z.object({
    embedding: z.array(z.number()),
    dimensions: z.number().int(),
    model: z.string(),
    tokens: z.number().int(),
});

export const embedBatchBody = z.object({
    texts: z.array(text, { error: "must be an array of strings" }).describe("Texts to embed, returned in the same order"),
    ...common,
});
export const embedBatchResponse = z.object({
    embeddings: z.array(z.array(z.number())),
    model: z.string(),
    dimensions: z.number().int(),
    tokens: z.number().int(),
});

export const similarityBody = z
    .object({
        text1: text.optional(),
        text2: text.optional(),
        query: text.optional(),
        documents: z.array(text, { error: "must be an array of strings" }).optional(),
        model: modelName.optional(),
        truncate: common.truncate,
        dimensions: common.dimensions,
    })
    .describe("Either {text1, text2} for one cosine, or {query, documents} for a ranking");
export const similarityResponse = z.object({
    similarity: z.number().optional(),
    results: z.array(z.object({ index: z.number().int(), score: z.number() })).optional(),
    model: z.string(),
    tokens: z.number().int(),
});

// ---- OpenAI API ----

export const openaiEmbeddingsBody = z.object({
    input: z
        .union([text, z.array(text), tokenIds, z.array(tokenIds)], {
            error: "must be a string, an array of strings, an array of token ids, or an array of token-id arrays",
        })
        .describe("string | string[] | number[] | number[][]"),
    encoding_format: z.enum(["float", "base64"], { error: 'must be "float" or "base64"' }).optional(),
    user: z.string().max(1000).optional(),
    ...common,
});

export const openaiEmbeddingsResponse = z.object({
    object: z.literal("list"),
    data: z.array(
        z.object({
            object: z.literal("embedding"),
            index: z.number().int(),
            embedding: z.union([z.array(z.number()), z.string()]),
        }),
    ),
    model: z.string(),
    usage: z.object({ prompt_tokens: z.number().int(), total_tokens: z.number().int() }),
});

export const openaiModelsResponse = z.object({
    object: z.literal("list"),
    data: z.array(
        z.object({
            id: z.string(),
            object: z.literal("model"),
            created: z.number().int(),
            owned_by: z.string(),
            state: z.string(),
        }),
    ),
});

export type EmbedBody = z.infer<typeof embedBody>;
export type OpenAIEmbeddingsBody = z.infer<typeof openaiEmbeddingsBody>;
