import type { ModelConfig } from "../config/schema.js";

/**
 * What `serve` runs when nothing names a model: Qwen3-Embedding-0.6B at Q8_0 (about 640 MB).
 * It is small enough for any machine this server targets, multilingual, 32k context,
 * Matryoshka-capable down to 32 dimensions, and at release it led the MTEB multilingual
 * leaderboard for its size. Q8_0 keeps its quality within noise of F16.
 */
export const DEFAULT_MODEL: Readonly<Partial<ModelConfig> & { path: string }> = {
    id: "qwen3-embedding-0.6b",
    path: "hf:Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0",
    aliases: ["text-embedding-3-small", "text-embedding-ada-002"],
    contextSize: 8192,
    prompts: {
        query: "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:",
    },
};
