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
 * Builds the cache keys of one request: sha256 over the request-wide parts, then the exact input
 * (text, or token ids joined by commas, tagged so a text can never equal a token list). Keys are
 * 43 characters of base64url whatever the input's size.
 */
export class CacheKeyBuilder {
    private readonly head: string;

    constructor(parts: CacheKeyParts) {
        // JSON gives every field an unambiguous boundary, so no two part lists produce the same head.
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

    key(input: string | readonly number[]): string {
        const hash = createHash("sha256").update(this.head);
        // UTF-16 code units, not UTF-8: lossless for any string, so an unpaired surrogate (refused on a
        // miss) can never share a key with the U+FFFD that UTF-8 encoding would turn it into.
        if (typeof input === "string") hash.update("s").update(input, "utf16le");
        else hash.update("t").update(input.join(","));
        return hash.digest("base64url");
    }
}
