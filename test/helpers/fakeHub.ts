/**
 * A loopback stand-in for the Hugging Face hub, close enough to its wire behaviour that the
 * downloader runs against it unchanged (via `endpoint`/`HF_ENDPOINT`):
 *
 * - `GET /api/models/<repo>` and `GET /api/models/<repo>/tree/main[/<dir>][?recursive=true]`
 *   (LFS entries carry `lfs.oid` = sha256; optional `Link: rel="next"` paging)
 * - `GET|HEAD /<repo>/resolve/main/<file>`: LFS files 302 to a second origin (like the CDN) with
 *   `x-linked-size` / `x-linked-etag`; small non-LFS files are served directly
 * - Range / If-Range / 416 on every body, ETag = the sha256
 * - gated repos answer 401 (`X-Error-Code: GatedRepo`) unless the right bearer token is sent
 * - `/plain/<repo>/<file>` on the CDN origin: a bare file server for plain URL specs
 * - fault injection: cut the connection mid-body, or stall it, on the next body request
 */
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeFile {
    path: string;
    content: Buffer;
    /** Stored in LFS (listed with lfs.oid, redirected to the CDN). Default true. */
    lfs?: boolean;
    /** Publish this sha256 instead of the real one, to provoke a checksum mismatch. */
    publishedSha256?: string;
}

export interface FakeRepo {
    files: FakeFile[];
    /** Bearer token the repo requires. */
    token?: string;
    /** What the token guards: "downloads" (like a real gated repo) or "all" (listing too). Default "downloads". */
    gate?: "downloads" | "all";
}

export interface FakeHubOptions {
    /** Keyed by "user/repo". */
    repos: Record<string, FakeRepo>;
    /** Redirect LFS downloads to a second origin, as the real hub does. Default true. */
    cdn?: boolean;
    /** Entries per tree page; unset = one page. */
    pageSize?: number;
}

export interface RecordedRequest {
    server: "hub" | "cdn";
    method: string;
    path: string;
    /** Repo file the request is about (resolve and CDN requests). */
    file?: string;
    range?: string;
    authorization?: string;
    status?: number;
}

type Fault = { kind: "cut" | "stall"; after: number };

export function sha256(buf: Buffer): string {
    return createHash("sha256").update(buf).digest("hex");
}

export function gitBlobSha1(buf: Buffer): string {
    return createHash("sha1").update(`blob ${buf.length}\0`).update(buf).digest("hex");
}

/** Random bytes that start with the GGUF magic, so they at least look like a model file. */
export function fakeGguf(size: number): Buffer {
    const buf = randomBytes(size);
    buf.write("GGUF", 0, "latin1");
    return buf;
}

function listen(server: http.Server): Promise<string> {
    return new Promise((resolve) => {
        server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
    });
}

export class FakeHub {
    readonly requests: RecordedRequest[] = [];
    endpoint = "";
    cdnOrigin = "";
    private readonly hub: http.Server;
    private readonly cdn: http.Server;
    private readonly faults = new Map<string, Fault>();

    private constructor(private readonly opts: FakeHubOptions) {
        this.hub = http.createServer((req, res) => this.handleHub(req, res));
        this.cdn = http.createServer((req, res) => this.handleCdn(req, res));
    }

    static async start(opts: FakeHubOptions): Promise<FakeHub> {
        const hub = new FakeHub(opts);
        hub.endpoint = await listen(hub.hub);
        hub.cdnOrigin = await listen(hub.cdn);
        return hub;
    }

    async close(): Promise<void> {
        this.hub.closeAllConnections();
        this.cdn.closeAllConnections();
        await Promise.all([new Promise((r) => this.hub.close(r)), new Promise((r) => this.cdn.close(r))]);
    }

    /** The next body request for `file` delivers `after` bytes, then the connection is destroyed. */
    cutNextBody(file: string, after: number): void {
        this.faults.set(file, { kind: "cut", after });
    }

    /** The next body request for `file` delivers `after` bytes, then sends nothing more. */
    stallNextBody(file: string, after: number): void {
        this.faults.set(file, { kind: "stall", after });
    }

    /** GET requests that stream `file`'s content (wherever they were served). */
    bodyRequests(file: string): RecordedRequest[] {
        return this.requests.filter((r) => r.method === "GET" && r.file === file && (r.status === 200 || r.status === 206));
    }

    reset(): void {
        this.requests.length = 0;
        this.faults.clear();
    }

    private record(server: "hub" | "cdn", req: http.IncomingMessage, file?: string): RecordedRequest {
        const r: RecordedRequest = { server, method: req.method ?? "GET", path: decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname) };
        if (file !== undefined) r.file = file;
        if (req.headers.range) r.range = req.headers.range;
        if (req.headers.authorization) r.authorization = req.headers.authorization;
        this.requests.push(r);
        return r;
    }

    private json(res: http.ServerResponse, rec: RecordedRequest, status: number, body: unknown, headers: Record<string, string> = {}): void {
        rec.status = status;
        res.writeHead(status, { "content-type": "application/json", ...headers });
        res.end(JSON.stringify(body));
    }

    private authorized(repo: FakeRepo, req: http.IncomingMessage): boolean {
        return !repo.token || req.headers.authorization === `Bearer ${repo.token}`;
    }

    private handleHub(req: http.IncomingMessage, res: http.ServerResponse): void {
        const url = new URL(req.url ?? "/", this.endpoint);
        const p = decodeURIComponent(url.pathname);
        const api = /^\/api\/models\/([^/]+\/[^/]+)(?:\/tree\/main(?:\/(.*))?)?$/.exec(p);
        if (api?.[1]) {
            const rec = this.record("hub", req);
            const repo = this.opts.repos[api[1]];
            if (!repo) return this.json(res, rec, 404, { error: "Repository not found" }, { "x-error-code": "RepoNotFound" });
            if (repo.gate === "all" && !this.authorized(repo, req)) {
                return this.json(res, rec, 401, { error: "Access to this model is restricted" }, { "x-error-code": "GatedRepo" });
            }
            if (!p.includes("/tree/main")) {
                return this.json(res, rec, 200, {
                    id: api[1],
                    sha: "0".repeat(40),
                    gated: repo.token ? "manual" : false,
                    siblings: repo.files.map((f) => ({ rfilename: f.path })),
                });
            }
            return this.tree(res, rec, url, repo, api[2] ?? "");
        }
        const resolve = /^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/.exec(p);
        if (resolve?.[1] && resolve[2]) {
            const rec = this.record("hub", req, resolve[2]);
            const repo = this.opts.repos[resolve[1]];
            if (!repo) return this.json(res, rec, 404, { error: "Repository not found" }, { "x-error-code": "RepoNotFound" });
            if (!this.authorized(repo, req)) {
                return this.json(res, rec, 401, { error: "Access to this model is restricted" }, { "x-error-code": "GatedRepo" });
            }
            const file = repo.files.find((f) => f.path === resolve[2]);
            if (!file) return this.json(res, rec, 404, { error: "Entry not found" }, { "x-error-code": "EntryNotFound" });
            const sha = sha256(file.content);
            if (file.lfs !== false && this.opts.cdn !== false) {
                rec.status = 302;
                res.writeHead(302, {
                    location: `${this.cdnOrigin}/repos/${resolve[1]}/${sha}?file=${encodeURIComponent(file.path)}&sig=fake`,
                    "x-linked-size": String(file.content.length),
                    "x-linked-etag": `"${sha}"`,
                    etag: `"${sha}"`,
                });
                return void res.end();
            }
            return this.body(req, res, rec, file);
        }
        const rec = this.record("hub", req);
        this.json(res, rec, 404, { error: "Not found" });
    }

    private tree(res: http.ServerResponse, rec: RecordedRequest, url: URL, repo: FakeRepo, dir: string): void {
        const recursive = url.searchParams.get("recursive") === "true";
        const prefix = dir ? `${dir.replace(/\/$/, "")}/` : "";
        const entries: unknown[] = [];
        const dirs = new Set<string>();
        for (const f of repo.files) {
            if (!f.path.startsWith(prefix)) continue;
            const rest = f.path.slice(prefix.length);
            if (!recursive && rest.includes("/")) {
                const d = prefix + rest.slice(0, rest.indexOf("/"));
                if (!dirs.has(d)) {
                    dirs.add(d);
                    entries.push({ type: "directory", oid: "d".repeat(40), size: 0, path: d });
                }
                continue;
            }
            const base = { type: "file", path: f.path, size: f.content.length };
            entries.push(
                f.lfs === false
                    ? { ...base, oid: gitBlobSha1(f.content) }
                    : { ...base, oid: "f".repeat(40), lfs: { oid: f.publishedSha256 ?? sha256(f.content), size: f.content.length, pointerSize: 134 } },
            );
        }
        if (prefix && entries.length === 0) return this.json(res, rec, 404, { error: "Entry not found" }, { "x-error-code": "EntryNotFound" });
        const size = this.opts.pageSize;
        if (!size) return this.json(res, rec, 200, entries);
        const cursor = Number(url.searchParams.get("cursor") ?? 0);
        const headers: Record<string, string> = {};
        if (cursor + size < entries.length) {
            const next = new URL(url.href);
            next.searchParams.set("cursor", String(cursor + size));
            headers.link = `<${next.href}>; rel="next"`;
        }
        this.json(res, rec, 200, entries.slice(cursor, cursor + size), headers);
    }

    private handleCdn(req: http.IncomingMessage, res: http.ServerResponse): void {
        const url = new URL(req.url ?? "/", this.cdnOrigin);
        // A plain file server (no hub API), for URL specs: /plain/<user>/<repo>/<file>.
        const plain = /^\/plain\/([^/]+\/[^/]+)\/(.+)$/.exec(decodeURIComponent(url.pathname));
        if (plain?.[1] && plain[2]) {
            const f = this.opts.repos[plain[1]]?.files.find((x) => x.path === plain[2]);
            const rec = this.record("cdn", req, f?.path);
            if (!f) return this.json(res, rec, 404, { error: "NoSuchKey" });
            return this.body(req, res, rec, f);
        }
        const m = /^\/repos\/([^/]+\/[^/]+)\/([0-9a-f]{64})$/.exec(url.pathname);
        const repo = m?.[1] ? this.opts.repos[m[1]] : undefined;
        const file = repo?.files.find((f) => sha256(f.content) === m?.[2]);
        const rec = this.record("cdn", req, file?.path);
        if (!file) return this.json(res, rec, 404, { error: "NoSuchKey" });
        this.body(req, res, rec, file);
    }

    private body(req: http.IncomingMessage, res: http.ServerResponse, rec: RecordedRequest, file: FakeFile): void {
        const data = file.content;
        const etag = `"${sha256(data)}"`;
        let start = 0;
        let end = data.length - 1;
        let partial = false;
        const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
        const ifRange = req.headers["if-range"];
        if (range?.[1] && (ifRange === undefined || ifRange === etag)) {
            start = Number(range[1]);
            if (range[2]) end = Math.min(Number(range[2]), end);
            if (start >= data.length) {
                rec.status = 416;
                res.writeHead(416, { "content-range": `bytes */${data.length}` });
                return void res.end();
            }
            partial = true;
        }
        const chunk = data.subarray(start, end + 1);
        rec.status = partial ? 206 : 200;
        res.writeHead(rec.status, {
            "content-type": "application/octet-stream",
            "content-length": String(chunk.length),
            "accept-ranges": "bytes",
            etag,
            ...(partial ? { "content-range": `bytes ${start}-${end}/${data.length}` } : {}),
        });
        if (req.method === "HEAD") return void res.end();
        const fault = this.faults.get(file.path);
        if (fault) {
            this.faults.delete(file.path);
            res.write(chunk.subarray(0, fault.after));
            // Give the bytes time to reach the client before the connection dies.
            if (fault.kind === "cut") setTimeout(() => res.socket?.destroy(), 30);
            return;
        }
        res.end(chunk);
    }
}
