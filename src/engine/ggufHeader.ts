import { stat } from "node:fs/promises";
import { readGgufFileInfo, type GgufFileInfo } from "node-llama-cpp";

/** How long a parsed header is shared: long enough for one model load, short enough to hold no memory. */
const SHARE_MS = 10_000;
const recent = new Map<string, Promise<GgufFileInfo>>();

/**
 * A local GGUF's header (metadata and tensor table), parsed once for all the readers of one model
 * load: the memory estimate, `replicas: auto` and inspect each need it, and parsing a header with a
 * 150k-token vocabulary takes about 200 ms. Keyed by path, size and mtime, so a replaced file is
 * read afresh.
 */
export async function readGgufHeader(path: string): Promise<GgufFileInfo> {
    const s = await stat(path);
    const key = `${path}\0${s.size}\0${s.mtimeMs}`;
    let info = recent.get(key);
    if (!info) {
        info = readGgufFileInfo(path, { logWarnings: false });
        recent.set(key, info);
        setTimeout(() => recent.delete(key), SHARE_MS).unref();
        info.catch(() => recent.delete(key));
    }
    return info;
}
