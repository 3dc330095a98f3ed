import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import {
    ChecksumMismatchError,
    DownloadAbortedError,
    DownloadFailedError,
    ModelError,
    SizeMismatchError,
} from "./errors.js";
import { httpError, networkErrorCode, sleep, unreachable, USER_AGENT } from "./hubClient.js";
import { acquireLock } from "./lock.js";

/** One file to bring into the cache, with what the source published about it. */
export interface FileJob {
    /** The model spec as given, for messages. */
    spec: string;
    /** Short name for messages and progress (repo-relative path or URL file name). */
    name: string;
    url: string;
    /** Final location in the cache. */
    dest: string;
    /** Published size; undefined for plain URLs (then Content-Length, if any, is used). */
    size?: number;
    /** Published sha256 (hub LFS oid, or a URL's #sha256=). */
    sha256?: string;
    /** Published git blob sha1, for small non-LFS files whose sha256 the hub does not list. */
    gitSha1?: string;
    /** Extra request headers (Authorization only when the URL is on the hub). */
    headers: Record<string, string>;
    /** Origin named in "unreachable" messages. */
    host: string;
}

export interface FileJobOptions {
    signal?: AbortSignal;
    maxRetries: number;
    stallTimeoutMs: number;
    retryDelayMs: number;
    lockWaitMs: number;
    onProgress: (phase: "download" | "verify" | "wait", fileBytes: number, fileTotalBytes: number) => void;
}

export interface FileResult {
    downloaded: boolean;
    sha256: string;
    size: number;
}

/** What `<file>.verified.json` records, so a later start can trust the file without re-hashing. */
export interface Sidecar {
    sha256: string;
    gitSha1?: string;
    size: number;
    /** The file's mtime when verified; any later change to the file invalidates the record. */
    mtimeMs: number;
    source: string;
    verifiedAt: string;
}

/** Identity of the data a `.partial` file holds, so a resume never splices two versions together. */
interface PartialMeta {
    url: string;
    size?: number;
    sha256?: string;
    gitSha1?: string;
    /** Strong ETag or Last-Modified of the first response, sent back as If-Range. */
    validator?: string;
}

export const sidecarPath = (dest: string) => `${dest}.verified.json`;
export const partialPath = (dest: string) => `${dest}.partial`;
const partialMetaPath = (dest: string) => `${dest}.partial.json`;
const lockPath = (dest: string) => `${dest}.lock`;

async function readJson<T>(file: string): Promise<T | undefined> {
    try {
        return JSON.parse(await readFile(file, "utf8")) as T;
    } catch {
        return undefined;
    }
}

async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
    const tmp = `${file}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(value, null, 2) + "\n");
    await rename(tmp, file);
}

async function sizeOf(file: string): Promise<number | undefined> {
    try {
        return (await stat(file)).size;
    } catch {
        return undefined;
    }
}

function expectationMet(sc: { sha256?: string; gitSha1?: string; size?: number }, job: Pick<FileJob, "sha256" | "gitSha1" | "size">): boolean {
    if (job.sha256 !== undefined && sc.sha256 !== job.sha256) return false;
    if (job.gitSha1 !== undefined && sc.gitSha1 !== job.gitSha1) return false;
    if (job.size !== undefined && sc.size !== job.size) return false;
    return true;
}

/**
 * The sidecar of `dest` if it still describes the file on disk (same size and mtime) and meets
 * the job's expectation; undefined otherwise.
 */
export async function verifiedSidecar(dest: string, job?: Pick<FileJob, "sha256" | "gitSha1" | "size">): Promise<Sidecar | undefined> {
    let st;
    try {
        st = await stat(dest);
    } catch {
        return undefined;
    }
    const sc = await readJson<Sidecar>(sidecarPath(dest));
    if (!sc || typeof sc.sha256 !== "string" || sc.size !== st.size || sc.mtimeMs !== st.mtimeMs) return undefined;
    if (job && !expectationMet(sc, job)) return undefined;
    return sc;
}

async function writeSidecar(dest: string, source: string, hashes: { sha256: string; gitSha1?: string }): Promise<Sidecar> {
    const st = await stat(dest);
    const sc: Sidecar = { sha256: hashes.sha256, size: st.size, mtimeMs: st.mtimeMs, source, verifiedAt: new Date().toISOString() };
    if (hashes.gitSha1) sc.gitSha1 = hashes.gitSha1;
    await writeJsonAtomic(sidecarPath(dest), sc);
    return sc;
}

/** sha256 of a file (and its git blob sha1 when asked), reporting bytes hashed. */
export async function hashFile(
    file: string,
    opts: { gitSha1?: boolean; signal?: AbortSignal; onBytes?: (n: number, total: number) => void } = {},
): Promise<{ sha256: string; gitSha1?: string; size: number }> {
    const size = (await stat(file)).size;
    const sha256 = createHash("sha256");
    // Git names a blob by sha1("blob <size>\0" + content).
    const sha1 = opts.gitSha1 ? createHash("sha1").update(`blob ${size}\0`) : undefined;
    let n = 0;
    const stream = createReadStream(file, { highWaterMark: 1 << 20, signal: opts.signal });
    for await (const chunk of stream as AsyncIterable<Buffer>) {
        sha256.update(chunk);
        sha1?.update(chunk);
        n += chunk.length;
        opts.onBytes?.(n, size);
    }
    const out: { sha256: string; gitSha1?: string; size: number } = { sha256: sha256.digest("hex"), size: n };
    if (sha1) out.gitSha1 = sha1.digest("hex");
    return out;
}

function parseContentRange(h: string | null): { start: number; end: number; total: number | undefined } | undefined {
    const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(h?.trim() ?? "");
    if (!m?.[1] || !m[2] || !m[3]) return undefined;
    return { start: Number(m[1]), end: Number(m[2]), total: m[3] === "*" ? undefined : Number(m[3]) };
}

function validatorOf(res: Response): string | undefined {
    const etag = res.headers.get("etag");
    // If-Range needs a strong validator; weak ETags would make every resume restart from zero.
    if (etag && !etag.startsWith("W/")) return etag;
    return res.headers.get("last-modified") ?? undefined;
}

/** A failure worth another attempt (network drop, stall, 5xx, 429, short body). */
class RetryableError extends Error {}

// Local disk trouble: retrying cannot help, and the message must say it is not the network.
const FS_FATAL_CODES = new Set(["ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS", "EISDIR", "ENOTDIR"]);

const CONNECT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN"]);

function aborted(job: FileJob, signal: AbortSignal | undefined): DownloadAbortedError {
    return new DownloadAbortedError(
        `${job.spec}: download of ${job.name} cancelled; the partial file is kept and the next attempt resumes it`,
        { cause: signal?.reason },
    );
}

/**
 * Appends the missing bytes of `job` to its `.partial` file, resuming with Range requests after
 * drops and stalls. Returns when the body is complete; verification is the caller's job.
 */
async function transfer(job: FileJob, opts: FileJobOptions, meta: PartialMeta): Promise<void> {
    const partial = partialPath(job.dest);
    let failures = 0;
    let everReceived = false;
    for (;;) {
        if (opts.signal?.aborted) throw aborted(job, opts.signal);
        let offset = (await sizeOf(partial)) ?? 0;
        if (job.size !== undefined) {
            if (offset === job.size) return;
            if (offset > job.size) {
                await rm(partial, { force: true });
                offset = 0;
            }
        }
        const attempt = new AbortController();
        let stallTimer: NodeJS.Timeout | undefined;
        const armStall = () => {
            clearTimeout(stallTimer);
            stallTimer = setTimeout(() => attempt.abort(new RetryableError(`no data for ${opts.stallTimeoutMs} ms`)), opts.stallTimeoutMs);
        };
        const headers: Record<string, string> = { ...job.headers, "user-agent": USER_AGENT, "accept-encoding": "identity" };
        if (offset > 0) {
            headers.range = `bytes=${offset}-`;
            if (meta.validator) headers["if-range"] = meta.validator;
        }
        let received = 0;
        try {
            armStall();
            const signal = opts.signal ? AbortSignal.any([opts.signal, attempt.signal]) : attempt.signal;
            const res = await fetch(job.url, { headers, signal, redirect: "follow" });
            if (res.status === 416 && offset > 0) {
                await res.body?.cancel();
                const total = parseContentRange(res.headers.get("content-range"))?.total;
                // Without a published size, "nothing left to send" means the partial is whole.
                if (job.size === undefined && total === offset) return;
                await rm(partial, { force: true });
                throw new RetryableError("the server refused the resume range (416); restarting the file");
            }
            if (!res.ok) {
                await res.body?.cancel();
                if (res.status === 429 || res.status >= 500) throw new RetryableError(`HTTP ${res.status}`);
                throw httpError({ endpoint: job.host, spec: job.spec, ...(job.headers.authorization ? { token: "set" } : {}) }, res.status, res.headers, job.name);
            }
            let append = false;
            let total: number | undefined;
            if (res.status === 206) {
                const cr = parseContentRange(res.headers.get("content-range"));
                if (!cr || cr.start !== offset) {
                    await res.body?.cancel();
                    await rm(partial, { force: true });
                    throw new RetryableError(`unexpected Content-Range ${res.headers.get("content-range")} for a resume at ${offset}`);
                }
                append = true;
                total = cr.total;
            } else {
                // A 200 to a Range request: the server ignored it or If-Range saw a new version.
                const len = res.headers.get("content-length");
                total = len !== null && !res.headers.get("content-encoding") ? Number(len) : undefined;
                offset = 0;
            }
            if (job.size !== undefined && total !== undefined && total !== job.size) {
                await res.body?.cancel();
                await rm(partial, { force: true });
                throw new SizeMismatchError(
                    `${job.spec}: ${job.name} is ${total} bytes on the server but the hub lists ${job.size}; nothing was kept`,
                    job.name,
                    job.size,
                    total,
                );
            }
            if (!append) {
                const validator = validatorOf(res);
                if (validator) meta.validator = validator;
                else delete meta.validator;
                await writeJsonAtomic(partialMetaPath(job.dest), meta);
            }
            const expected = job.size ?? total;
            if (!res.body) throw new RetryableError("empty response body");
            const start = offset;
            await pipeline(
                Readable.fromWeb(res.body as unknown as NodeReadableStream<Uint8Array>),
                async function* (source: AsyncIterable<Buffer>) {
                    for await (const chunk of source) {
                        received += chunk.length;
                        everReceived = true;
                        armStall();
                        opts.onProgress("download", start + received, expected ?? 0);
                        yield chunk;
                    }
                },
                createWriteStream(partial, { flags: append ? "a" : "w" }),
            );
            clearTimeout(stallTimer);
            if (expected === undefined || start + received >= expected) return;
            throw new RetryableError(`connection closed after ${start + received} of ${expected} bytes`);
        } catch (err) {
            clearTimeout(stallTimer);
            if (opts.signal?.aborted) throw aborted(job, opts.signal);
            if (err instanceof ModelError) throw err;
            const reason = attempt.signal.aborted ? attempt.signal.reason : err;
            const fsCode = (reason as NodeJS.ErrnoException | undefined)?.code;
            if (typeof fsCode === "string" && FS_FATAL_CODES.has(fsCode) && (reason as NodeJS.ErrnoException).syscall) {
                throw new DownloadFailedError(`${job.spec}: cannot write ${partial}: ${(reason as Error).message}`, { cause: reason });
            }
            // Progress resets the budget: a flaky link that keeps delivering is not a failure.
            if (received > 0) failures = 0;
            failures++;
            const code = networkErrorCode(reason);
            if (!everReceived && code && CONNECT_CODES.has(code) && failures >= 2) throw unreachable(job.spec, job.host, code, reason);
            if (failures > opts.maxRetries) {
                const why = reason instanceof Error ? (code ? `${reason.message} (${code})` : reason.message) : String(reason);
                throw new DownloadFailedError(
                    `${job.spec}: downloading ${job.name} failed after ${failures} attempts: ${why}. ` +
                        "Downloaded data is kept; run again to resume",
                    { cause: reason },
                );
            }
            try {
                await sleep(Math.min(opts.retryDelayMs * 2 ** (failures - 1), 10_000), opts.signal);
            } catch {
                throw aborted(job, opts.signal);
            }
        }
    }
}

/**
 * Brings one file into the cache, verified: skips it when the sidecar vouches for it, otherwise
 * downloads (resuming any `.partial`), checks size and sha256, and only then renames it into place.
 * A checksum mismatch deletes the data and throws {@link ChecksumMismatchError}.
 */
export async function fetchVerifiedFile(job: FileJob, opts: FileJobOptions): Promise<FileResult> {
    const cached = await useCached(job, opts);
    if (cached) return cached;

    try {
        await mkdir(path.dirname(job.dest), { recursive: true });
    } catch (err) {
        throw new DownloadFailedError(
            `${job.spec}: cannot create ${path.dirname(job.dest)} (${(err as NodeJS.ErrnoException).code ?? err}); ` +
                "choose another cache folder with --cache-dir or EMBEDDING_SERVER_CACHE_DIR",
            { cause: err },
        );
    }
    const release = await acquireLock(lockPath(job.dest), {
        waitMs: opts.lockWaitMs,
        spec: job.spec,
        ...(opts.signal ? { signal: opts.signal } : {}),
        onWait: () => opts.onProgress("wait", 0, job.size ?? 0),
    });
    try {
        // The previous holder of the lock may have just finished this very file.
        const again = await useCached(job, opts);
        if (again) return again;

        const partial = partialPath(job.dest);
        const metaFile = partialMetaPath(job.dest);
        const previous = await readJson<PartialMeta>(metaFile);
        const meta: PartialMeta = { url: job.url };
        if (job.size !== undefined) meta.size = job.size;
        if (job.sha256) meta.sha256 = job.sha256;
        if (job.gitSha1) meta.gitSha1 = job.gitSha1;
        const sameTarget =
            previous !== undefined &&
            previous.size === meta.size &&
            previous.sha256 === meta.sha256 &&
            previous.gitSha1 === meta.gitSha1 &&
            (meta.sha256 !== undefined || previous.url === meta.url);
        if (sameTarget) {
            if (previous.validator) meta.validator = previous.validator;
        } else {
            // Bytes of another version (or of unknown origin) must not be resumed onto.
            await rm(partial, { force: true });
            await writeJsonAtomic(metaFile, meta);
        }

        await transfer(job, opts, meta);

        const fh = await open(partial, "r+");
        try {
            await fh.sync();
        } finally {
            await fh.close();
        }
        const hashes = await hashFile(partial, {
            gitSha1: job.gitSha1 !== undefined,
            ...(opts.signal ? { signal: opts.signal } : {}),
            onBytes: (n, total) => opts.onProgress("verify", n, total),
        }).catch((err: unknown) => {
            if (opts.signal?.aborted) throw aborted(job, opts.signal);
            throw err;
        });
        if (job.size !== undefined && hashes.size !== job.size) {
            await rm(partial, { force: true });
            await rm(metaFile, { force: true });
            throw new SizeMismatchError(
                `${job.spec}: ${job.name} downloaded as ${hashes.size} bytes but ${job.size} were expected; the data was deleted, run again to retry`,
                job.name,
                job.size,
                hashes.size,
            );
        }
        const wanted = job.sha256 ?? job.gitSha1;
        const got = job.sha256 ? hashes.sha256 : hashes.gitSha1;
        if (wanted !== undefined && got !== wanted) {
            await rm(partial, { force: true });
            await rm(metaFile, { force: true });
            throw new ChecksumMismatchError(
                `${job.spec}: checksum mismatch for ${job.name}: expected ${job.sha256 ? "sha256" : "git sha1"} ${wanted}, got ${got}. ` +
                    "The corrupt data was deleted; run again to re-download",
                job.name,
                wanted,
                got ?? "",
            );
        }
        try {
            await rename(partial, job.dest);
        } catch (err) {
            throw new DownloadFailedError(`${job.spec}: could not move ${partial} into place: ${(err as Error).message}`, { cause: err });
        }
        const sc = await writeSidecar(job.dest, job.url, hashes);
        await rm(metaFile, { force: true });
        return { downloaded: true, sha256: sc.sha256, size: sc.size };
    } finally {
        await release();
    }
}

/** A cache hit: by sidecar, or by hashing a file that lost its sidecar (e.g. a crash right after rename). */
async function useCached(job: FileJob, opts: FileJobOptions): Promise<FileResult | undefined> {
    const sc = await verifiedSidecar(job.dest, job);
    if (sc) return { downloaded: false, sha256: sc.sha256, size: sc.size };
    let st;
    try {
        st = await stat(job.dest);
    } catch {
        return undefined;
    }
    const size = st.size;
    const knownGood = await readJson<Sidecar>(sidecarPath(job.dest));
    // An older verified version stays usable until its replacement is verified and renamed over it.
    if (knownGood && knownGood.size === size && knownGood.mtimeMs === st.mtimeMs) return undefined;
    if ((job.size === undefined || size === job.size) && (job.sha256 || job.gitSha1)) {
        const hashes = await hashFile(job.dest, {
            gitSha1: job.gitSha1 !== undefined,
            ...(opts.signal ? { signal: opts.signal } : {}),
            onBytes: (n, total) => opts.onProgress("verify", n, total),
        });
        if (expectationMet(hashes, job)) {
            const written = await writeSidecar(job.dest, job.url, hashes);
            return { downloaded: false, sha256: written.sha256, size: written.size };
        }
    }
    // Unverifiable data at the final path would look complete to a loader: remove it.
    await rm(job.dest, { force: true });
    await rm(sidecarPath(job.dest), { force: true });
    return undefined;
}
