/** Vector post-processing shared by every route. Sums run in double precision, as TEI does. */

/** Returns the first `dimensions` components (Matryoshka truncation), L2-normalised when asked. */
export function postprocess(raw: Float32Array, options: { normalize: boolean; dimensions?: number }): Float32Array {
    const dims = options.dimensions && options.dimensions < raw.length ? options.dimensions : raw.length;
    const out = raw.slice(0, dims);
    if (!options.normalize) return out;
    let sum = 0;
    for (let i = 0; i < dims; i++) sum += out[i]! * out[i]!;
    const norm = Math.sqrt(sum);
    if (norm > 0) for (let i = 0; i < dims; i++) out[i] = out[i]! / norm;
    return out;
}

export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let i = 0; i < a.length; i++) {
        dot += a[i]! * b[i]!;
        na += a[i]! * a[i]!;
        nb += b[i]! * b[i]!;
    }
    return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** Little-endian float32 bytes, base64: what the OpenAI SDK asks for by default. */
export function toBase64(vector: Float32Array): string {
    const bytes = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength);
    if (isLittleEndian) return bytes.toString("base64");
    const copy = Buffer.from(bytes);
    copy.swap32();
    return copy.toString("base64");
}

export function fromBase64(text: string): Float32Array {
    const bytes = Buffer.from(text, "base64");
    if (!isLittleEndian) bytes.swap32();
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/**
 * The vector as a JSON array, written directly. Nine significant digits round-trip any float32
 * exactly, so float and base64 encodings carry the same values; skipping an intermediate
 * number[] and JSON.stringify makes this about 2.5x faster, which matters on the cache-hit path.
 */
export function toJsonArray(vector: Float32Array): string {
    let out = "[";
    for (let i = 0; i < vector.length; i++) {
        const x = vector[i]!;
        if (i > 0) out += ",";
        out += Number.isFinite(x) ? x.toPrecision(9) : "null";
    }
    return `${out}]`;
}

const isLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
