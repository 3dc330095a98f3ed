import { VERSION } from "../version.js";
import {
    DownloadAbortedError,
    DownloadFailedError,
    HubAccessDeniedError,
    HubAuthRequiredError,
    HubNotFoundError,
    HubUnreachableError,
    type ModelError,
} from "./errors.js";
import type { RepoFile } from "./selectFiles.js";

export const DEFAULT_HF_ENDPOINT = "https://huggingface.co";

export const USER_AGENT = `embedding-server/${VERSION}`;

/** `explicit`, else `HF_ENDPOINT`, else https://huggingface.co; without a trailing slash. */
export function resolveEndpoint(explicit?: string): string {
    const raw = explicit || process.env.HF_ENDPOINT || DEFAULT_HF_ENDPOINT;
    let url: URL;
    try {
        url = new URL(raw);
    } catch {
        throw new DownloadFailedError(`Invalid hub endpoint ${JSON.stringify(raw)}: expected an http(s) URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new DownloadFailedError(`Invalid hub endpoint ${JSON.stringify(raw)}: expected an http(s) URL`);
    }
    return url.href.replace(/\/+$/, "");
}

/** `explicit` (null = none), else `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`. */
export function resolveToken(explicit: string | null | undefined): string | undefined {
    if (explicit === null) return undefined;
    const t = explicit ?? process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
    return t ? t.trim() || undefined : undefined;
}

function encodePath(p: string): string {
    return p.split("/").map(encodeURIComponent).join("/");
}

/** `<endpoint>/<user>/<repo>/resolve/main/<file>`: the hub's download URL for a file. */
export function resolveFileUrl(endpoint: string, repo: string, file: string): string {
    return `${endpoint}/${encodePath(repo)}/resolve/main/${encodePath(file)}`;
}

const NETWORK_CODES = new Set([
    "ECONNREFUSED",
    "ENOTFOUND",
    "EAI_AGAIN",
    "EAI_FAIL",
    "EHOSTUNREACH",
    "ENETUNREACH",
    "ENETDOWN",
    "ECONNRESET",
    "ETIMEDOUT",
    "EPIPE",
    "UND_ERR_CONNECT_TIMEOUT",
    "UND_ERR_SOCKET",
    "UND_ERR_HEADERS_TIMEOUT",
    "UND_ERR_BODY_TIMEOUT",
]);

/**
 * The system error code behind a failed fetch ("ECONNREFUSED", "ENOTFOUND", ...), or undefined when
 * the failure is not a network one. undici wraps them as TypeError("fetch failed", { cause }).
 */
export function networkErrorCode(err: unknown): string | undefined {
    const seen = new Set<unknown>();
    let e: unknown = err;
    while (e && typeof e === "object" && !seen.has(e)) {
        seen.add(e);
        const code = (e as { code?: unknown }).code;
        if (typeof code === "string" && NETWORK_CODES.has(code)) return code;
        // Happy-eyeballs connects fail with an AggregateError holding one error per address.
        const inner = (e as { errors?: unknown }).errors;
        if (Array.isArray(inner)) {
            for (const i of inner) {
                const c = networkErrorCode(i);
                if (c) return c;
            }
        }
        e = (e as { cause?: unknown }).cause;
    }
    return undefined;
}

export function unreachable(spec: string, target: string, code: string, cause?: unknown): HubUnreachableError {
    return new HubUnreachableError(
        `Cannot download ${spec}: ${target} is unreachable (${code}). Check the network connection` +
            ` (and HF_ENDPOINT if set), or pass a local file with --model /path/to/model.gguf`,
        { cause },
    );
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const onAbort = () => {
            clearTimeout(timer);
            reject(signal?.reason);
        };
        const timer = setTimeout(() => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
        }, ms);
        signal?.addEventListener("abort", onAbort, { once: true });
    });
}

export interface HubRequestContext {
    endpoint: string;
    token?: string;
    /** The spec as the user typed it, for messages. */
    spec: string;
    signal?: AbortSignal;
}

/**
 * The error for a non-2xx hub answer. The hub's `X-Error-Code` header tells a gated repo from a
 * missing one; both answer 401 to anonymous callers.
 */
export function httpError(ctx: HubRequestContext, status: number, headers: Headers, what: string): ModelError {
    const errCode = headers.get("x-error-code") ?? "";
    const repoPage = what.startsWith("hf:") ? ` (${ctx.endpoint}/${what.slice(3).split("/").slice(0, 2).join("/")})` : "";
    if (status === 404 || (status === 401 && errCode === "RepoNotFound" && !ctx.token)) {
        if (errCode === "EntryNotFound") return new HubNotFoundError(`${ctx.spec}: ${what} not found on the hub`);
        return new HubNotFoundError(
            `${ctx.spec}: ${what} not found on ${ctx.endpoint}${status === 401 ? "; if it is a private repository, set HF_TOKEN or pass --token" : ""}`,
        );
    }
    if (status === 401) {
        return new HubAuthRequiredError(
            ctx.token
                ? `${ctx.spec}: the hub rejected the access token for ${what} (401). Check HF_TOKEN / --token`
                : `${ctx.spec}: ${what} requires authentication (it is gated or private). Set HF_TOKEN or pass --token with a token that can read it${repoPage}`,
        );
    }
    if (status === 403) {
        return new HubAccessDeniedError(
            `${ctx.spec}: access to ${what} is restricted (403). Accept the model's terms on its page while logged in as the token's owner${repoPage}`,
        );
    }
    return new DownloadFailedError(`${ctx.spec}: the hub answered ${status} for ${what}`);
}

interface TreeEntry {
    type?: string;
    path?: string;
    size?: number;
    oid?: string;
    lfs?: { oid?: string; size?: number };
}

function nextLink(link: string | null): string | undefined {
    if (!link) return undefined;
    for (const part of link.split(",")) {
        const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
        if (m?.[1]) return m[1];
    }
    return undefined;
}

const LIST_ATTEMPTS = 3;
const LIST_TIMEOUT_MS = 30_000;

/** GET with retries on 429/5xx; maps network failures to {@link HubUnreachableError}. */
async function hubGet(ctx: HubRequestContext, url: string, what: string): Promise<Response> {
    const sameOrigin = new URL(url).origin === new URL(ctx.endpoint).origin;
    const headers: Record<string, string> = { "user-agent": USER_AGENT, accept: "application/json" };
    // The token only ever goes to the configured hub, never to a host a response points at.
    if (ctx.token && sameOrigin) headers.authorization = `Bearer ${ctx.token}`;
    for (let attempt = 1; ; attempt++) {
        let res: Response;
        try {
            const timeout = AbortSignal.timeout(LIST_TIMEOUT_MS);
            res = await fetch(url, { headers, signal: ctx.signal ? AbortSignal.any([ctx.signal, timeout]) : timeout });
        } catch (err) {
            if (ctx.signal?.aborted) throw new DownloadAbortedError(`${ctx.spec}: cancelled`, { cause: ctx.signal.reason });
            const code = networkErrorCode(err) ?? ((err as Error)?.name === "TimeoutError" ? "ETIMEDOUT" : undefined);
            if (code) throw unreachable(ctx.spec, ctx.endpoint, code, err);
            throw new DownloadFailedError(`${ctx.spec}: request to ${ctx.endpoint} failed: ${(err as Error)?.message ?? err}`, { cause: err });
        }
        if (res.ok) return res;
        if ((res.status === 429 || res.status >= 500) && attempt < LIST_ATTEMPTS) {
            await res.body?.cancel();
            const retryAfter = Number(res.headers.get("retry-after"));
            const delay = Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter * 1000, 30_000) : 500 * 2 ** (attempt - 1);
            try {
                await sleep(delay, ctx.signal);
            } catch {
                throw new DownloadAbortedError(`${ctx.spec}: cancelled`, { cause: ctx.signal?.reason });
            }
            continue;
        }
        await res.body?.cancel();
        throw httpError(ctx, res.status, res.headers, what);
    }
}

/**
 * Lists files of `repo` at revision main via `GET <endpoint>/api/models/<repo>/tree/main[/<dir>]`,
 * following `Link: rel="next"` pages. LFS entries carry the sha256 (`lfs.oid`) and real size.
 */
export async function listRepoFiles(ctx: HubRequestContext, repo: string, opts: { dir?: string; recursive?: boolean } = {}): Promise<RepoFile[]> {
    const dir = opts.dir ? `/${encodePath(opts.dir)}` : "";
    let url: string | undefined = `${ctx.endpoint}/api/models/${encodePath(repo)}/tree/main${dir}${opts.recursive ? "?recursive=true" : ""}`;
    const files: RepoFile[] = [];
    for (let page = 0; url && page < 1000; page++) {
        const res = await hubGet(ctx, url, opts.dir ? `folder ${opts.dir}/ of hf:${repo}` : `hf:${repo}`);
        let entries: unknown;
        try {
            entries = await res.json();
        } catch (err) {
            throw new DownloadFailedError(`${ctx.spec}: the hub's file listing for ${repo} is not JSON`, { cause: err });
        }
        if (!Array.isArray(entries)) throw new DownloadFailedError(`${ctx.spec}: unexpected file listing for ${repo}`);
        for (const e of entries as TreeEntry[]) {
            if (e.type !== "file" || typeof e.path !== "string") continue;
            const size = e.lfs?.size ?? e.size;
            if (typeof size !== "number") continue;
            const f: RepoFile = { path: e.path, size };
            if (e.lfs?.oid && /^[0-9a-f]{64}$/i.test(e.lfs.oid)) f.sha256 = e.lfs.oid.toLowerCase();
            else if (!e.lfs && e.oid && /^[0-9a-f]{40}$/i.test(e.oid)) f.gitSha1 = e.oid.toLowerCase();
            files.push(f);
        }
        const next = nextLink(res.headers.get("link"));
        url = next ? new URL(next, url).href : undefined;
    }
    return files;
}
