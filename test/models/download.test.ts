import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { defaultCacheDir } from "../../src/models/cacheDir.js";
import { resolveModel, type DownloadProgress, type ResolveModelOptions } from "../../src/models/download.js";
import { ModelError } from "../../src/models/errors.js";
import { parseModelSpec } from "../../src/models/modelSpec.js";
import { createProgressPrinter } from "../../src/models/progress.js";
import { matchesQuant } from "../../src/models/selectFiles.js";
import { FakeHub, fakeGguf, sha256 } from "../helpers/fakeHub.js";

const TOKEN = "hf_FAKEsecretTOKEN0123456789";
const KB = 1024;

const files = {
    q8: fakeGguf(300 * KB),
    q4: fakeGguf(200 * KB),
    f16: fakeGguf(400 * KB),
    mmproj: fakeGguf(10 * KB),
    part1: fakeGguf(180 * KB),
    part2: fakeGguf(120 * KB),
    bad: fakeGguf(64 * KB),
    gated: fakeGguf(96 * KB),
    tiny: fakeGguf(2 * KB),
};

const repos = {
    "acme/embed-GGUF": {
        files: [
            { path: "embed-Q8_0.gguf", content: files.q8 },
            { path: "embed-Q4_K_M.gguf", content: files.q4 },
            { path: "embed-F16.gguf", content: files.f16 },
            { path: "mmproj-embed-f16.gguf", content: files.mmproj },
            { path: "README.md", content: Buffer.from("# embed\n"), lfs: false },
        ],
    },
    "acme/ambiguous-GGUF": {
        files: [
            { path: "a-Q8_0.gguf", content: files.q8 },
            { path: "b-Q8_0.gguf", content: files.q4 },
            { path: "b-Q4_0.gguf", content: files.q4 },
        ],
    },
    "acme/split-GGUF": {
        files: [
            { path: "big/big-Q8_0-00001-of-00002.gguf", content: files.part1 },
            { path: "big/big-Q8_0-00002-of-00002.gguf", content: files.part2 },
        ],
    },
    "acme/bad-GGUF": { files: [{ path: "bad-Q8_0.gguf", content: files.bad, publishedSha256: "0".repeat(64) }] },
    "acme/gated-GGUF": { token: TOKEN, files: [{ path: "gated-Q8_0.gguf", content: files.gated }] },
    "acme/private-GGUF": { token: TOKEN, gate: "all" as const, files: [{ path: "p-Q8_0.gguf", content: files.tiny }] },
    "acme/small": { files: [{ path: "tiny.gguf", content: files.tiny, lfs: false }] },
};

let hub: FakeHub;
let root: string;
let cacheDir: string;
let n = 0;

async function freshCache(): Promise<string> {
    cacheDir = path.join(root, `cache-${++n}`);
    await mkdir(cacheDir, { recursive: true });
    return cacheDir;
}

/** Options every test shares: loopback hub, its own cache, no ambient token, fast retries. */
function opts(extra: ResolveModelOptions = {}): ResolveModelOptions {
    return { endpoint: hub.endpoint, cacheDir, token: null, retryDelayMs: 10, ...extra };
}

async function fileSha(p: string): Promise<string> {
    return sha256(await readFile(p));
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<ModelError> {
    try {
        await promise;
    } catch (err) {
        assert.ok(err instanceof ModelError, `expected a ModelError, got ${String(err)}`);
        assert.equal(err.code, code, err.message);
        return err;
    }
    assert.fail(`expected ${code}, but it resolved`);
}

function rangeStart(range: string | undefined): number | undefined {
    const m = /^bytes=(\d+)-$/.exec(range ?? "");
    return m?.[1] ? Number(m[1]) : undefined;
}

before(async () => {
    root = await mkdtemp(path.join(tmpdir(), "es-download-"));
    hub = await FakeHub.start({ repos });
});

after(async () => {
    await hub.close();
    await rm(root, { recursive: true, force: true });
});

beforeEach(() => hub.reset());

describe("pull from the hub", () => {
    test("hf:user/repo:quant downloads the matching file, verifies it and leaves no temp files", async () => {
        await freshCache();
        const events: DownloadProgress[] = [];
        const r = await resolveModel("hf:acme/embed-GGUF:q8_0", opts({ onProgress: (p) => events.push(p) }));
        const dest = path.join(cacheDir, "acme", "embed-GGUF", "embed-Q8_0.gguf");
        assert.equal(r.path, dest);
        assert.deepEqual(r.files, [dest]);
        assert.equal(r.downloaded, true);
        assert.equal(await fileSha(dest), sha256(files.q8));
        const sidecar = JSON.parse(await readFile(`${dest}.verified.json`, "utf8")) as { sha256: string; size: number };
        assert.equal(sidecar.sha256, sha256(files.q8));
        assert.equal(sidecar.size, files.q8.length);
        for (const leftover of [".partial", ".partial.json", ".lock"]) assert.equal(existsSync(dest + leftover), false, leftover);
        // LFS bytes came from the CDN origin after the hub's redirect, as on the real hub.
        assert.equal(hub.bodyRequests("embed-Q8_0.gguf")[0]?.server, "cdn");
        const last = events.filter((e) => e.phase === "download").at(-1);
        assert.equal(last?.bytes, files.q8.length);
        assert.equal(last?.totalBytes, files.q8.length);
        assert.ok(events.some((e) => e.phase === "verify" && e.fileBytes === files.q8.length));
    });

    test("a second pull skips the verified file without requesting its body", async () => {
        const r = await resolveModel("hf:acme/embed-GGUF:Q8_0", opts());
        assert.equal(r.downloaded, false);
        assert.equal(r.fromCacheOnly, false);
        assert.deepEqual(hub.bodyRequests("embed-Q8_0.gguf"), []);
        assert.equal(hub.requests.filter((q) => q.file === "embed-Q8_0.gguf").length, 0);
    });

    test("a tampered cached file is re-downloaded, never trusted", async () => {
        const dest = path.join(cacheDir, "acme", "embed-GGUF", "embed-Q8_0.gguf");
        const bytes = Buffer.from(files.q8);
        bytes[1000] = (bytes[1000] ?? 0) ^ 0xff;
        await writeFile(dest, bytes);
        const r = await resolveModel("hf:acme/embed-GGUF:Q8_0", opts());
        assert.equal(r.downloaded, true);
        assert.equal(await fileSha(dest), sha256(files.q8));
    });

    test("a connection cut mid-body is resumed with a Range request", async () => {
        await freshCache();
        hub.cutNextBody("embed-F16.gguf", 150 * KB);
        const r = await resolveModel("hf:acme/embed-GGUF:F16", opts());
        assert.equal(await fileSha(r.path), sha256(files.f16));
        const bodies = hub.bodyRequests("embed-F16.gguf");
        assert.equal(bodies.length, 2);
        assert.equal(bodies[0]?.range, undefined);
        const start = rangeStart(bodies[1]?.range);
        assert.ok(start !== undefined && start > 0 && start <= 150 * KB, `resume range was ${bodies[1]?.range}`);
        assert.equal(bodies[1]?.status, 206);
    });

    test("a stalled transfer is dropped after stallTimeoutMs and resumed", async () => {
        await freshCache();
        hub.stallNextBody("embed-Q4_K_M.gguf", 50 * KB);
        const r = await resolveModel("hf:acme/embed-GGUF:Q4_K_M", opts({ stallTimeoutMs: 300 }));
        assert.equal(await fileSha(r.path), sha256(files.q4));
        const start = rangeStart(hub.bodyRequests("embed-Q4_K_M.gguf")[1]?.range);
        assert.ok(start !== undefined && start > 0);
    });

    test("an aborted pull keeps the .partial file and the next pull resumes it", async () => {
        await freshCache();
        const dest = path.join(cacheDir, "acme", "embed-GGUF", "embed-F16.gguf");
        hub.stallNextBody("embed-F16.gguf", 120 * KB);
        const ac = new AbortController();
        const first = resolveModel(
            "hf:acme/embed-GGUF:F16",
            opts({ signal: ac.signal, onProgress: (p) => p.fileBytes >= 120 * KB && ac.abort() }),
        );
        await rejectsWith(first, "MODEL_DOWNLOAD_ABORTED");
        assert.equal(existsSync(dest), false, "nothing at the final path");
        assert.equal(existsSync(`${dest}.lock`), false, "lock released");
        const kept = (await stat(`${dest}.partial`)).size;
        assert.ok(kept > 0 && kept <= 120 * KB, `partial holds ${kept} bytes`);

        hub.reset();
        const r = await resolveModel("hf:acme/embed-GGUF:F16", opts());
        assert.equal(r.downloaded, true);
        assert.equal(await fileSha(dest), sha256(files.f16));
        const bodies = hub.bodyRequests("embed-F16.gguf");
        assert.equal(bodies.length, 1);
        assert.equal(rangeStart(bodies[0]?.range), kept);
    });

    test("a checksum mismatch is refused and leaves nothing at the final path", async () => {
        await freshCache();
        const dest = path.join(cacheDir, "acme", "bad-GGUF", "bad-Q8_0.gguf");
        const err = await rejectsWith(resolveModel("hf:acme/bad-GGUF:Q8_0", opts()), "MODEL_CHECKSUM_MISMATCH");
        assert.match(err.message, /checksum mismatch for bad-Q8_0\.gguf/);
        for (const p of [dest, `${dest}.partial`, `${dest}.verified.json`, `${dest}.lock`]) assert.equal(existsSync(p), false, p);
    });

    test("a split GGUF downloads every part and returns the first", async () => {
        await freshCache();
        const r = await resolveModel("hf:acme/split-GGUF:Q8_0", opts());
        const dir = path.join(cacheDir, "acme", "split-GGUF", "big");
        assert.equal(r.path, path.join(dir, "big-Q8_0-00001-of-00002.gguf"));
        assert.deepEqual(r.files, [r.path, path.join(dir, "big-Q8_0-00002-of-00002.gguf")]);
        assert.equal(await fileSha(r.files[0] ?? ""), sha256(files.part1));
        assert.equal(await fileSha(r.files[1] ?? ""), sha256(files.part2));

        // Naming any part by path brings the set and still answers with part 1, from cache.
        hub.reset();
        const again = await resolveModel("hf:acme/split-GGUF/big/big-Q8_0-00002-of-00002.gguf", opts());
        assert.equal(again.path, r.path);
        assert.equal(again.downloaded, false);
        assert.equal(hub.requests.filter((q) => q.file).length, 0);
    });

    test("a gated repo needs the token, sends it only to the hub, and never shows it in errors", async () => {
        await freshCache();
        const noToken = await rejectsWith(resolveModel("hf:acme/gated-GGUF:Q8_0", opts()), "MODEL_AUTH_REQUIRED");
        assert.match(noToken.message, /HF_TOKEN/);

        const wrong = "hf_WRONGwrongWRONG987654321";
        const bad = await rejectsWith(resolveModel("hf:acme/gated-GGUF:Q8_0", opts({ token: wrong })), "MODEL_AUTH_REQUIRED");
        for (const text of [bad.message, String(bad.stack), JSON.stringify(bad), String(bad.cause ?? "")]) {
            assert.equal(text.includes(wrong), false, "wrong token leaked into the error");
            assert.equal(text.includes(TOKEN), false);
        }

        const saved = process.env.HF_TOKEN;
        process.env.HF_TOKEN = TOKEN;
        hub.reset();
        try {
            const r = await resolveModel("hf:acme/gated-GGUF:Q8_0", opts({ token: undefined }));
            assert.equal(await fileSha(r.path), sha256(files.gated));
        } finally {
            if (saved === undefined) delete process.env.HF_TOKEN;
            else process.env.HF_TOKEN = saved;
        }
        const resolveReq = hub.requests.find((q) => q.server === "hub" && q.file === "gated-Q8_0.gguf");
        assert.equal(resolveReq?.authorization, `Bearer ${TOKEN}`);
        const cdnReqs = hub.requests.filter((q) => q.server === "cdn");
        assert.ok(cdnReqs.length > 0);
        assert.ok(cdnReqs.every((q) => q.authorization === undefined), "token must not follow the redirect to another origin");
    });

    test("a private repo's listing answers 401 without a token", async () => {
        await freshCache();
        await rejectsWith(resolveModel("hf:acme/private-GGUF:Q8_0", opts()), "MODEL_AUTH_REQUIRED");
        const r = await resolveModel("hf:acme/private-GGUF:Q8_0", opts({ token: TOKEN }));
        assert.equal(await fileSha(r.path), sha256(files.tiny));
    });

    test("an unknown repo or file is MODEL_HUB_NOT_FOUND", async () => {
        await rejectsWith(resolveModel("hf:acme/nope-GGUF:Q8_0", opts()), "MODEL_HUB_NOT_FOUND");
        await rejectsWith(resolveModel("hf:acme/embed-GGUF/nope.gguf", opts()), "MODEL_HUB_NOT_FOUND");
    });

    test("a missing quant lists the available GGUF files", async () => {
        const err = await rejectsWith(resolveModel("hf:acme/embed-GGUF:Q5_K_M", opts()), "MODEL_QUANT_NOT_FOUND");
        assert.deepEqual((err as ModelError & { candidates: string[] }).candidates, ["embed-F16.gguf", "embed-Q4_K_M.gguf", "embed-Q8_0.gguf"]);
        assert.match(err.message, /Q5_K_M[\s\S]*embed-F16\.gguf[\s\S]*embed-Q4_K_M\.gguf[\s\S]*embed-Q8_0\.gguf/);
        assert.doesNotMatch(err.message, /mmproj/);
    });

    test("an ambiguous quant (or none, with several models) lists the candidates", async () => {
        const err = await rejectsWith(resolveModel("hf:acme/ambiguous-GGUF:Q8_0", opts()), "MODEL_QUANT_AMBIGUOUS");
        assert.deepEqual((err as ModelError & { candidates: string[] }).candidates, ["a-Q8_0.gguf", "b-Q8_0.gguf"]);
        const none = await rejectsWith(resolveModel("hf:acme/ambiguous-GGUF", opts()), "MODEL_QUANT_AMBIGUOUS");
        assert.match(none.message, /:<quant>/);
        // "Q4_0" is exact: it does not also claim other files.
        const q4 = await resolveModel("hf:acme/ambiguous-GGUF:q4_0", opts({ cacheDir: await freshCache() }));
        assert.equal(path.basename(q4.path), "b-Q4_0.gguf");
    });

    test("a non-LFS file is verified by its git blob sha1", async () => {
        await freshCache();
        const r = await resolveModel("hf:acme/small/tiny.gguf", opts());
        assert.equal(await fileSha(r.path), sha256(files.tiny));
        assert.equal(hub.bodyRequests("tiny.gguf")[0]?.server, "hub");
    });

    test("tree listings are followed across Link pages", async () => {
        const paged = await FakeHub.start({ repos, pageSize: 1 });
        try {
            const r = await resolveModel("hf:acme/embed-GGUF:Q4_K_M", { ...opts(), endpoint: paged.endpoint, cacheDir: await freshCache() });
            assert.equal(path.basename(r.path), "embed-Q4_K_M.gguf");
            assert.ok(paged.requests.filter((q) => q.path.includes("/tree/main")).length >= 5);
        } finally {
            await paged.close();
        }
    });

    test("a lock left by a dead process is taken over", async () => {
        await freshCache();
        const dest = path.join(cacheDir, "acme", "small", "tiny.gguf");
        await mkdir(path.dirname(dest), { recursive: true });
        const { hostname } = await import("node:os");
        await writeFile(`${dest}.lock`, JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), since: "x" }));
        const r = await resolveModel("hf:acme/small/tiny.gguf", opts({ lockWaitMs: 2000 }));
        assert.equal(r.downloaded, true);
        assert.equal(existsSync(`${dest}.lock`), false);
    });

    test("a lock whose pid was reused by a newer process (a restarted container) is taken over", { skip: !existsSync("/proc/self/stat") && "process start times come from /proc (Linux)" }, async () => {
        await freshCache();
        const dest = path.join(cacheDir, "acme", "small", "tiny.gguf");
        await mkdir(path.dirname(dest), { recursive: true });
        const { hostname } = await import("node:os");
        // Our own pid is alive, but it started at another time than the one recorded.
        await writeFile(`${dest}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), since: "x", started: "1" }));
        const r = await resolveModel("hf:acme/small/tiny.gguf", opts({ lockWaitMs: 2000 }));
        assert.equal(r.downloaded, true);
    });
});

describe("offline and other sources", () => {
    async function closedPort(): Promise<number> {
        const srv = net.createServer();
        await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
        const port = (srv.address() as net.AddressInfo).port;
        await new Promise((r) => srv.close(r));
        return port;
    }

    test("an unreachable hub names the model and suggests --model", async () => {
        const endpoint = `http://127.0.0.1:${await closedPort()}`;
        const t0 = Date.now();
        const err = await rejectsWith(
            resolveModel("hf:acme/embed-GGUF:Q8_0", opts({ endpoint, cacheDir: await freshCache() })),
            "MODEL_HUB_UNREACHABLE",
        );
        assert.ok(Date.now() - t0 < 3000, "fails fast");
        assert.match(err.message, /hf:acme\/embed-GGUF:Q8_0/);
        assert.match(err.message, /ECONNREFUSED/);
        assert.match(err.message, /--model \/path\/to\/model\.gguf/);
    });

    test("with the hub unreachable, a verified cached copy is used", async () => {
        await freshCache();
        await resolveModel("hf:acme/embed-GGUF:Q4_K_M", opts());
        const endpoint = `http://127.0.0.1:${await closedPort()}`;
        const r = await resolveModel("hf:acme/embed-GGUF:Q4_K_M", opts({ endpoint }));
        assert.equal(r.fromCacheOnly, true);
        assert.equal(r.downloaded, false);
        assert.equal(path.basename(r.path), "embed-Q4_K_M.gguf");
        const off = await resolveModel("hf:acme/embed-GGUF:Q4_K_M", opts({ offline: true }));
        assert.equal(off.path, r.path);
        await rejectsWith(resolveModel("hf:acme/embed-GGUF:Q8_0", opts({ offline: true })), "MODEL_HUB_UNREACHABLE");
    });

    test("a plain URL with #sha256 is downloaded, verified and never sent the token", async () => {
        await freshCache();
        const url = `${hub.cdnOrigin}/plain/acme/embed-GGUF/embed-Q4_K_M.gguf`;
        const r = await resolveModel(`${url}#sha256=${sha256(files.q4)}`, opts({ token: TOKEN }));
        assert.equal(await fileSha(r.path), sha256(files.q4));
        assert.ok(r.path.startsWith(path.join(cacheDir, "_urls")));
        assert.ok(hub.requests.every((q) => q.authorization === undefined));
        await rejectsWith(resolveModel(`${url}#sha256=${"1".repeat(64)}`, opts({ cacheDir: await freshCache() })), "MODEL_CHECKSUM_MISMATCH");
    });

    test("a hub resolve URL is treated as hf:user/repo/file", async () => {
        await freshCache();
        const r = await resolveModel(`${hub.endpoint}/acme/embed-GGUF/resolve/main/embed-Q8_0.gguf`, opts());
        assert.equal(r.spec.kind, "hf-file");
        assert.equal(r.path, path.join(cacheDir, "acme", "embed-GGUF", "embed-Q8_0.gguf"));
    });

    test("a local path is returned as-is, or refused when missing", async () => {
        const p = path.join(root, "local.gguf");
        await writeFile(p, files.tiny);
        const r = await resolveModel(p, opts());
        assert.deepEqual([r.path, r.downloaded], [p, false]);
        await rejectsWith(resolveModel(path.join(root, "missing.gguf"), opts()), "MODEL_LOCAL_NOT_FOUND");
    });
});

describe("specs, quant matching, cache folder, progress", () => {
    test("parses the accepted spec forms", () => {
        assert.deepEqual(parseModelSpec("hf:Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0"), {
            kind: "hf-repo",
            raw: "hf:Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0",
            user: "Qwen",
            name: "Qwen3-Embedding-0.6B-GGUF",
            repo: "Qwen/Qwen3-Embedding-0.6B-GGUF",
            quant: "Q8_0",
        });
        assert.equal(parseModelSpec("hf:u/r").kind, "hf-repo");
        const file = parseModelSpec("hf:u/r/sub/m-f16.gguf");
        assert.equal(file.kind === "hf-file" && file.file, "sub/m-f16.gguf");
        const url = parseModelSpec("https://example.com/x/m.gguf");
        assert.equal(url.kind, "url");
        const hfUrl = parseModelSpec("https://huggingface.co/u/r/resolve/main/m.gguf");
        assert.equal(hfUrl.kind, "hf-file");
        assert.equal(parseModelSpec("./models/m.gguf", { cwd: "/srv" }).kind, "local");
    });

    test("rejects bad specs with a clear message", () => {
        for (const bad of ["", "hf:", "hf:user", "hf:/repo", "hf:u/r:Q8:0", "hf:u/r/../x.gguf", "hf:u/r/readme.md", "ftp://h/m.gguf", "https://h/m.bin", "hf:u/r:bad tag"]) {
            assert.throws(
                () => parseModelSpec(bad),
                (e: unknown) => e instanceof ModelError && e.code === "MODEL_SPEC_INVALID" && /expected hf:<user>\/<repo>/.test(e.message),
                bad,
            );
        }
    });

    test("quant tags match whole tokens, case-insensitively", () => {
        assert.ok(matchesQuant("model-Q8_0", "q8_0"));
        assert.ok(matchesQuant("model.Q4_K_M", "Q4_K_M"));
        assert.ok(!matchesQuant("model-Q4_K_M", "Q4_K"));
        assert.ok(!matchesQuant("model-BF16", "F16"));
        assert.ok(!matchesQuant("model-Q4_0_4_4", "Q4_0"));
        assert.ok(matchesQuant("Q8_0/model", "Q8_0"));
    });

    test("cache folder follows the OS conventions and the override", () => {
        assert.equal(defaultCacheDir({ env: { EMBEDDING_SERVER_CACHE_DIR: "/data/m" }, platform: "linux", home: "/h" }), "/data/m");
        assert.equal(defaultCacheDir({ env: {}, platform: "linux", home: "/h" }), "/h/.cache/embedding-server/models");
        assert.equal(defaultCacheDir({ env: { XDG_CACHE_HOME: "/x" }, platform: "linux", home: "/h" }), "/x/embedding-server/models");
        assert.equal(defaultCacheDir({ env: { XDG_CACHE_HOME: "rel" }, platform: "linux", home: "/h" }), "/h/.cache/embedding-server/models");
        assert.equal(defaultCacheDir({ env: {}, platform: "darwin", home: "/Users/a" }), "/Users/a/Library/Caches/embedding-server/models");
        assert.equal(
            defaultCacheDir({ env: { LOCALAPPDATA: "C:\\Users\\a\\AppData\\Local" }, platform: "win32", home: "C:\\Users\\a" }),
            "C:\\Users\\a\\AppData\\Local\\embedding-server\\models",
        );
    });

    test("progress prints plain lines off a TTY and a bar with speed and ETA on one", () => {
        const capture = (tty: boolean) => {
            const out: string[] = [];
            const stream = { isTTY: tty, columns: 120, write: (s: string) => out.push(s) } as unknown as NodeJS.WriteStream;
            const p = createProgressPrinter({ stream, tty, intervalSeconds: 0 });
            const base = { model: "hf:a/b:Q8_0", file: "m.gguf", fileIndex: 1, fileCount: 1, fileTotalBytes: 2e6, totalBytes: 2e6 };
            p.onProgress({ ...base, phase: "download", fileBytes: 1e6, bytes: 1e6, bytesPerSecond: 5e5, etaSeconds: 2 });
            p.onProgress({ ...base, phase: "download", fileBytes: 2e6, bytes: 2e6, bytesPerSecond: 5e5, etaSeconds: 0 });
            p.finish();
            return out.join("");
        };
        const plain = capture(false);
        assert.match(plain, /^downloading m\.gguf: 50% 1\.00 MB\/2\.00 MB at 500\.0 kB\/s, ETA 2s\n/);
        assert.doesNotMatch(plain, /\r|\x1b/);
        const bar = capture(true);
        assert.match(bar, /\r\x1b\[2Kdownloading m\.gguf \[#+-+\]  50% 1\.00 MB\/2\.00 MB 500\.0 kB\/s ETA 2s/);
        assert.ok(bar.endsWith("\n"));
    });
});

describe("pull command", () => {
    test("prints the model path on stdout and progress on stderr", async () => {
        await freshCache();
        const here = path.dirname(fileURLToPath(import.meta.url));
        const script = [
            "import yargs from 'yargs';",
            `import pull from ${JSON.stringify(path.resolve(here, "../../src/cli/commands/pull.ts"))};`,
            "await yargs(process.argv.slice(1)).command(pull).strict().parseAsync();",
        ].join("\n");
        const args = ["--import", "tsx", "--input-type=module", "-e", script, "pull", "hf:acme/embed-GGUF:Q8_0", "--cache-dir", cacheDir, "--endpoint", hub.endpoint];
        const run = () =>
            new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
                const child = spawn(process.execPath, args, { cwd: path.resolve(here, "../.."), env: { ...process.env, HF_TOKEN: "" } });
                let stdout = "";
                let stderr = "";
                child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
                child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
                child.on("close", (code) => resolve({ code, stdout, stderr }));
            });
        const first = await run();
        assert.equal(first.code, 0, first.stderr);
        assert.equal(first.stdout, `${path.join(cacheDir, "acme", "embed-GGUF", "embed-Q8_0.gguf")}\n`);
        assert.match(first.stderr, /downloading embed-Q8_0\.gguf/);
        assert.match(first.stderr, /downloaded and verified/);
        const second = await run();
        assert.equal(second.stdout, first.stdout);
        assert.match(second.stderr, /already cached and verified/);
    });

    test("reports a typed error and exits 1", async () => {
        const here = path.dirname(fileURLToPath(import.meta.url));
        const script = `import yargs from 'yargs'; import pull from ${JSON.stringify(path.resolve(here, "../../src/cli/commands/pull.ts"))}; await yargs(process.argv.slice(1)).command(pull).parseAsync();`;
        const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, "pull", "hf:acme/embed-GGUF:Q2_K", "--endpoint", hub.endpoint, "--cache-dir", cacheDir]);
        let stderr = "";
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        const code = await new Promise<number | null>((r) => child.on("close", r));
        assert.equal(code, 1);
        assert.match(stderr, /^error: No GGUF file in hf:acme\/embed-GGUF matches quant "Q2_K"/m);
    });
});
