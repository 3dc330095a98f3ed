import { GgufFileType } from "node-llama-cpp";
import type { PoolingType } from "./engine.js";

/** llama.cpp's enum llama_pooling_type, as stored in `<arch>.pooling_type`. */
const POOLING_BY_ID: Record<number, PoolingType> = { 0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank" };

export function poolingFromId(id: number | undefined, fallback: PoolingType): PoolingType {
    return id === undefined ? fallback : (POOLING_BY_ID[id] ?? fallback);
}

/** "MOSTLY_Q8_0" -> "Q8_0", "ALL_F32" -> "F32": the names users know from file names. */
export function fileTypeName(id: number | undefined): string {
    if (id === undefined) return "unknown";
    const name = (GgufFileType as unknown as Record<number, string>)[id];
    return name ? name.replace(/^(MOSTLY|ALL)_/, "") : `type-${id}`;
}

/** Reads `<arch>.<dotted.key>` from node-llama-cpp's metadata, which nests keys at every dot. */
export function archValue(metadata: unknown, key: string): unknown {
    const meta = metadata as Record<string, unknown>;
    const arch = String((meta.general as Record<string, unknown> | undefined)?.architecture);
    let node: unknown = meta[arch];
    for (const part of key.split(".")) node = (node as Record<string, unknown> | undefined)?.[part];
    return node;
}
