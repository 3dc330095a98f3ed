import { createHash } from "node:crypto";

/** Everything besides the input that decides the vector a request gets back. */
export interface CacheKeyParts {
    /** Served model id. */
    model: string;
    /** Content identity of the GGUF file (see fileIdentity.ts). */
    fileIdentity: string;
    /** Runtime and backend ("native/cpu"): other kernels give other low bits. */
    runtime: string;
    pooling: string;
    /** Tokens one input may use: decides truncation and what is refused. */
    contextLength: number;
    /** Prompt prefix put before every text. */
    prefix: string;
    truncate: boolean;
    normalize: boolean;
    /** Output dimensions (Matryoshka), or the model's full size. */
    dimensions: number;
}

/** Bump when the key composition or the stored encoding changes. */
const KEY_VERSION = "v1";

/**
 * Builds the cache keys of one request. The exact key is the request-wide parts (as JSON, so every
 * field has an unambiguous boundary), a tag for the input's kind, and the input itself (a text, or
 * token ids joined by commas): a text can never equal a token list, and moving characters between
 * the prompt prefix and the input changes the key.
 *
 * The in-process layer uses this exact string (no hashing on the hot path); Redis and anything
 * else outside the process get its sha256, 43 characters of base64url whatever the input's size,
 * so no text ever leaves the process.
 */
export class CacheKeyBuilder {
    private readonly head: string;

    constructor(parts: CacheKeyParts) {
        this.head = JSON.stringify([
            KEY_VERSION,
            parts.model,
            parts.fileIdentity,
            parts.runtime,
            parts.pooling,
            parts.contextLength,
            parts.prefix,
            parts.truncate,
            parts.normalize,
            parts.dimensions,
        ]);
    }

    /** The exact key: used by the memory layer and to match identical inputs in flight. */
    key(input: string | readonly number[]): string {
        return typeof input === "string" ? `${this.head}s${input}` : `${this.head}t${input.join(",")}`;
    }
}

/**
 * The bounded form of a key for shared stores. UTF-16 code units are hashed, not UTF-8: lossless
 * for any string, so an unpaired surrogate (refused on a miss) never shares a hash with the U+FFFD
 * that UTF-8 encoding would turn it into.
 */
export function hashKey(key: string): string {
    return createHash("sha256").update(key, "utf16le").digest("base64url");
}
