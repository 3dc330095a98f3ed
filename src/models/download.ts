/**
 * Model resolution: turns a model spec into local GGUF path(s), downloading from the Hugging Face
 * hub (or a plain URL) into the cache when needed.
 *
 * Why not node-llama-cpp's downloader: it picks `hf:user/repo:quant` files through the hub's
 * `/v2/.../manifests/<tag>` API (the hub chooses, so we cannot list candidates or refuse
 * ambiguous tags), stores files flat as `hf_user_model.Q8_0.gguf`, and never checks a checksum.
 * Its engine, ipull, resumes at 5 MiB chunk granularity and, in our trials, corrupted a resumed file
 * with one stream and stalled after a mid-body cut with several. So the file list, sizes and
 * sha256 come from the hub's tree API, and bytes come through Node's own fetch (undici) with
 * byte-exact Range resume, verified before anything reaches its final path.
 */
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { resolveCacheDir } from "./cacheDir.js";
import { DownloadFailedError, HubUnreachableError, LocalModelNotFoundError, ModelError } from "./errors.js";
import { fetchVerifiedFile, verifiedSidecar, type FileJob } from "./fetchFile.js";
import { listRepoFiles, resolveEndpoint, resolveFileUrl, resolveToken, type HubRequestContext } from "./hubClient.js";
import {
    parseModelSpec,
    splitInfo,
    splitPartName,
    type HfFileSpec,
    type HfRepoSpec,
    type LocalSpec,
    type ModelSpec,
    type UrlSpec,
} from "./modelSpec.js";
import { SpeedMeter, type DownloadProgress } from "./progress.js";
import { selectByQuant, selectNamedFile, type ModelCandidate, type RepoFile } from "./selectFiles.js";

export type { DownloadProgress } from "./progress.js";

export interface ResolveModelOptions {
    /** Where downloads are stored. Default: `EMBEDDING_SERVER_CACHE_DIR`, else the OS cache folder (see cacheDir.ts). */
    cacheDir?: string;
    /** Hub base URL. Default: `HF_ENDPOINT`, else `https://huggingface.co`. */
    endpoint?: string;
    /**
     * Access token for gated or private repos, sent only to the hub endpoint as `Authorization: Bearer`.
     * Default: `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`. `null` sends none.
     */
    token?: string | null;
    /** Called as bytes arrive and while files are hashed. Default: silent. */
    onProgress?: (p: DownloadProgress) => void;
    /** Cancels cleanly: `.partial` data is kept and the next call resumes it. */
    signal?: AbortSignal;
    /** Use only verified cached files, never the network. Default: `HF_HUB_OFFLINE` is "1"/"true". */
    offline?: boolean;
    /** Consecutive failed attempts per file (without any byte received) before giving up. Default 5. */
    maxRetries?: number;
    /** An attempt that receives no byte for this long is dropped and resumed. Default 60000 ms. */
    stallTimeoutMs?: number;
    /** First retry delay, doubled per consecutive failure, at most 10 s. Default 500 ms. */
    retryDelayMs?: number;
    /** How long to wait while another process downloads the same file. Default 30 min. */
    lockWaitMs?: number;
    /** Base for relative local paths. Default: `process.cwd()`. */
    cwd?: string;
}

export interface ResolvedModel {
    /** What llama.cpp should load: the file, or the first part of a split GGUF. */
    path: string;
    /** Every file of the model (all parts of a split GGUF), in part order. */
    files: string[];
    /** True when at least one file was transferred by this call. */
    downloaded: boolean;
    /** True when the hub was not consulted (offline mode, or unreachable and the cache had a verified copy). */
    fromCacheOnly: boolean;
    spec: ModelSpec;
}

interface PlannedModel {
    jobs: FileJob[];
}

function truthy(v: string | undefined): boolean {
    return v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());
}

/** `<cache>/<user>/<repo>/<file>`; each piece was validated when parsed or listed. */
function hfDest(cacheDir: string, repo: string, file: string): string {
    const dest = path.join(cacheDir, ...repo.split("/"), ...file.split("/"));
    // Belt and braces against a hostile listing: the result must stay inside the cache.
    if (!dest.startsWith(path.join(cacheDir, ...repo.split("/")) + path.sep)) {
        throw new DownloadFailedError(`Refusing to store ${file}: it would land outside the cache folder`);
    }
    return dest;
}

function safeSegment(s: string): string {
    const clean = s.replace(/[^A-Za-z0-9._-]/g, "_");
    return clean === "" || clean === "." || clean === ".." ? "_" : clean;
}

/** `<cache>/_urls/<host>[_<port>]/<path>`: "_" cannot start a hub user name, so no clash. */
function urlDest(cacheDir: string, url: URL): string {
    const host = safeSegment(url.port ? `${url.hostname}_${url.port}` : url.hostname);
    const segments = url.pathname
        .split("/")
        .filter((s) => s !== "")
        .map((s) => safeSegment(decodeURIComponent(s)));
    return path.join(cacheDir, "_urls", host, ...segments);
}

function repoFileValid(f: RepoFile): boolean {
    return f.path.split("/").every((p) => p !== "" && p !== "." && p !== ".." && !p.includes("\\") && !p.includes("\0"));
}

function hfJobs(spec: HfRepoSpec | HfFileSpec, chosen: ModelCandidate, cacheDir: string, endpoint: string, token: string | undefined): FileJob[] {
    return chosen.files.map((f) => {
        const job: FileJob = {
            spec: spec.raw,
            name: f.path,
            url: resolveFileUrl(endpoint, spec.repo, f.path),
            dest: hfDest(cacheDir, spec.repo, f.path),
            size: f.size,
            headers: token ? { authorization: `Bearer ${token}` } : {},
            host: endpoint,
        };
        if (f.sha256) job.sha256 = f.sha256;
        else if (f.gitSha1) job.gitSha1 = f.gitSha1;
        return job;
    });
}

function urlJobs(spec: UrlSpec, cacheDir: string, endpoint: string, token: string | undefined): FileJob[] {
    const url = new URL(spec.url);
    const base = decodeURIComponent(url.pathname.split("/").pop() ?? "");
    const split = splitInfo(base);
    const parts = split ? Array.from({ length: split.total }, (_, i) => splitPartName(split, i + 1)) : [base];
    // The token is for the hub only; a third-party host never sees it.
    const auth: Record<string, string> = token && url.origin === new URL(endpoint).origin ? { authorization: `Bearer ${token}` } : {};
    return parts.map((name) => {
        const u = new URL(url.href);
        if (split) u.pathname = u.pathname.replace(/[^/]*$/, encodeURIComponent(name));
        const job: FileJob = { spec: spec.raw, name, url: u.href, dest: urlDest(cacheDir, u), headers: auth, host: u.origin };
        if (spec.sha256 && name === base) job.sha256 = spec.sha256;
        return job;
    });
}

async function planFromHub(spec: HfRepoSpec | HfFileSpec, ctx: HubRequestContext, cacheDir: string): Promise<PlannedModel> {
    let chosen: ModelCandidate;
    if (spec.kind === "hf-repo") {
        const files = (await listRepoFiles(ctx, spec.repo, { recursive: true })).filter(repoFileValid);
        chosen = selectByQuant(spec, files);
    } else {
        const dir = spec.file.includes("/") ? spec.file.slice(0, spec.file.lastIndexOf("/")) : undefined;
        const files = (await listRepoFiles(ctx, spec.repo, dir ? { dir } : {})).filter(repoFileValid);
        chosen = selectNamedFile(spec, files);
    }
    return { jobs: hfJobs(spec, chosen, cacheDir, ctx.endpoint, ctx.token) };
}

/** Verified files under a cached repo folder, described like a hub listing. */
async function cachedRepoFiles(root: string): Promise<RepoFile[]> {
    const out: RepoFile[] = [];
    const walk = async (dir: string, rel: string) => {
        let entries;
        try {
            entries = await readdir(dir, { withFileTypes: true });
        } catch {
            return;
        }
        for (const e of entries) {
            const relPath = rel ? `${rel}/${e.name}` : e.name;
            if (e.isDirectory()) await walk(path.join(dir, e.name), relPath);
            else if (e.isFile() && e.name.toLowerCase().endsWith(".gguf")) {
                const sc = await verifiedSidecar(path.join(dir, e.name));
                if (sc) out.push({ path: relPath, size: sc.size, sha256: sc.sha256 });
            }
        }
    };
    await walk(root, "");
    return out;
}

/** The model from verified cache entries alone, or undefined if the cache cannot provide it. */
async function planFromCache(spec: Exclude<ModelSpec, LocalSpec>, cacheDir: string, endpoint: string): Promise<PlannedModel | undefined> {
    try {
        let jobs: FileJob[];
        if (spec.kind === "url") jobs = urlJobs(spec, cacheDir, endpoint, undefined);
        else {
            const files = await cachedRepoFiles(path.join(cacheDir, ...spec.repo.split("/")));
            const chosen = spec.kind === "hf-repo" ? selectByQuant(spec, files) : selectNamedFile(spec, files);
            jobs = hfJobs(spec, chosen, cacheDir, endpoint, undefined);
        }
        for (const job of jobs) if (!(await verifiedSidecar(job.dest, job))) return undefined;
        return { jobs };
    } catch (err) {
        if (err instanceof ModelError) return undefined;
        throw err;
    }
}

async function resolveLocal(spec: LocalSpec): Promise<ResolvedModel> {
    const isFile = async (p: string) => {
        try {
            return (await stat(p)).isFile();
        } catch {
            return false;
        }
    };
    if (!(await isFile(spec.path))) {
        throw new LocalModelNotFoundError(`Model file not found: ${spec.path}`);
    }
    const split = splitInfo(path.basename(spec.path));
    if (!split) return { path: spec.path, files: [spec.path], downloaded: false, fromCacheOnly: true, spec };
    const dir = path.dirname(spec.path);
    const files = Array.from({ length: split.total }, (_, i) => path.join(dir, splitPartName(split, i + 1)));
    const missing: string[] = [];
    for (const f of files) if (!(await isFile(f))) missing.push(path.basename(f));
    if (missing.length > 0) {
        throw new LocalModelNotFoundError(`Split model ${spec.path} is incomplete: missing ${missing.join(", ")} in ${dir}`);
    }
    return { path: files[0] ?? spec.path, files, downloaded: false, fromCacheOnly: true, spec };
}

/**
 * Resolves a model spec to local file(s), downloading what is missing:
 *
 * - `hf:user/repo:Q8_0`: the repo's GGUF whose name carries the quant tag (case-insensitive);
 *   errors list the candidates when none or several match. Without a tag the repo must hold one model.
 * - `hf:user/repo/path/file.gguf`: that file.
 * - `https://host/…/file.gguf[#sha256=<hex>]`: a plain URL (hub URLs of revision main count as `hf:`).
 * - anything else: a local path, returned as-is once it exists.
 *
 * Split GGUFs (`-00001-of-0000N.gguf`) bring all parts; `path` is the first. Downloads land in
 * `<cache>/<user>/<repo>/<file>`, resume from `<file>.partial`, are checked against the hub's size
 * and sha256, and get a `<file>.verified.json` sidecar so later calls skip re-hashing. When the hub
 * cannot be reached, an already verified cached copy is used.
 */
export async function resolveModel(specString: string, opts: ResolveModelOptions = {}): Promise<ResolvedModel> {
    const endpoint = resolveEndpoint(opts.endpoint);
    const spec = parseModelSpec(specString, { endpoint, ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    if (spec.kind === "local") return resolveLocal(spec);

    const cacheDir = resolveCacheDir(opts.cacheDir);
    const token = resolveToken(opts.token);
    const offline = opts.offline ?? truthy(process.env.HF_HUB_OFFLINE);

    let plan: PlannedModel;
    if (offline) {
        const cached = await planFromCache(spec, cacheDir, endpoint);
        if (!cached) {
            throw new HubUnreachableError(
                `Cannot use ${spec.raw}: offline mode is on (HF_HUB_OFFLINE) and no verified copy is in ${cacheDir}. ` +
                    "Pull it while online, or pass a local file with --model /path/to/model.gguf",
            );
        }
        return done(spec, cached, false, true);
    }
    try {
        plan =
            spec.kind === "url"
                ? { jobs: urlJobs(spec, cacheDir, endpoint, token) }
                : await planFromHub(spec, { endpoint, spec: spec.raw, ...(token ? { token } : {}), ...(opts.signal ? { signal: opts.signal } : {}) }, cacheDir);
    } catch (err) {
        if (err instanceof HubUnreachableError) {
            const cached = await planFromCache(spec, cacheDir, endpoint);
            if (cached) return done(spec, cached, false, true);
        }
        throw err;
    }

    const jobs = plan.jobs;
    const knownTotal = jobs.every((j) => j.size !== undefined) ? jobs.reduce((s, j) => s + (j.size ?? 0), 0) : 0;
    const downloadMeter = new SpeedMeter();
    const verifyMeter = new SpeedMeter();
    let doneBefore = 0;
    let downloaded = false;
    for (const [i, job] of jobs.entries()) {
        let lastPhase = "";
        const result = await fetchVerifiedFile(job, {
            ...(opts.signal ? { signal: opts.signal } : {}),
            maxRetries: opts.maxRetries ?? 5,
            stallTimeoutMs: opts.stallTimeoutMs ?? 60_000,
            retryDelayMs: opts.retryDelayMs ?? 500,
            lockWaitMs: opts.lockWaitMs ?? 30 * 60_000,
            onProgress: (phase, fileBytes, fileTotalBytes) => {
                if (!opts.onProgress) return;
                if (phase !== lastPhase && phase === "verify") verifyMeter.reset();
                lastPhase = phase;
                const bytes = phase === "download" ? doneBefore + fileBytes : doneBefore;
                const rate = phase === "download" ? downloadMeter.update(bytes) : phase === "verify" ? verifyMeter.update(fileBytes) : 0;
                const remaining = phase === "download" ? knownTotal - bytes : fileTotalBytes - fileBytes;
                opts.onProgress({
                    phase,
                    model: spec.raw,
                    file: job.name,
                    fileIndex: i + 1,
                    fileCount: jobs.length,
                    fileBytes,
                    fileTotalBytes,
                    bytes,
                    totalBytes: knownTotal,
                    bytesPerSecond: rate,
                    etaSeconds: rate > 0 && remaining >= 0 && (phase !== "download" || knownTotal > 0) ? remaining / rate : undefined,
                });
            },
        });
        downloaded ||= result.downloaded;
        doneBefore += result.size;
    }
    return done(spec, plan, downloaded, false);
}

function done(spec: ModelSpec, plan: PlannedModel, downloaded: boolean, fromCacheOnly: boolean): ResolvedModel {
    const files = plan.jobs.map((j) => j.dest);
    return { path: files[0] ?? "", files, downloaded, fromCacheOnly, spec };
}
