import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import type { Engine } from "../engine/engine.js";

/** Bytes read from the start of the file: the GGUF header (metadata, tokenizer, tensor table) of most models. */
const HEAD_BYTES = 4 * 1024 * 1024;
/** Samples of tensor data spread over the rest of the file, so fine-tunes with equal headers differ. */
const SAMPLES = 32;
const SAMPLE_BYTES = 64 * 1024;

/**
 * A content identity for a model file: sha256 over its size, its first 4 MiB and 32 slices of
 * 64 KiB spread evenly over the rest (about 6 MiB read, whatever the file's size). It depends only
 * on the bytes, not on the path or mtime, so every instance that serves the same file shares
 * cache entries, and a re-downloaded or replaced file with other weights does not.
 */
export async function computeFileIdentity(path: string): Promise<string> {
    const file = await open(path, "r");
    try {
        const { size } = await file.stat();
        const hash = createHash("sha256").update(`gguf-identity-v1:${size}:`);
        const read = async (position: number, length: number) => {
            const buffer = Buffer.allocUnsafe(length);
            let done = 0;
            while (done < length) {
                const { bytesRead } = await file.read(buffer, done, length - done, position + done);
                if (bytesRead === 0) break;
                done += bytesRead;
            }
            hash.update(buffer.subarray(0, done));
        };
        await read(0, Math.min(size, HEAD_BYTES));
        const rest = size - HEAD_BYTES;
        if (rest > 0) {
            const step = Math.max(SAMPLE_BYTES, Math.floor(rest / SAMPLES));
            for (let offset = HEAD_BYTES; offset < size; offset += step) await read(offset, Math.min(SAMPLE_BYTES, size - offset));
            await read(Math.max(HEAD_BYTES, size - SAMPLE_BYTES), Math.min(SAMPLE_BYTES, rest));
        }
        return hash.digest("base64url").slice(0, 22);
    } finally {
        await file.close();
    }
}

const identities = new WeakMap<Engine, string>();

/**
 * Records which file an engine was loaded from; the cache keys vectors by it. The default loader
 * records every engine it creates; a custom loader (tests, embedding hosts) records its own, or its
 * engines are served without the cache.
 */
export function setFileIdentity(engine: Engine, identity: string): void {
    identities.set(engine, identity);
}

/** The identity recorded at load, or undefined (then the cache is not used for that engine). */
export function fileIdentityOf(engine: Engine): string | undefined {
    return identities.get(engine);
}

