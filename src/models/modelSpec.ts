import path from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidModelSpecError } from "./errors.js";

/** `hf:user/repo[:quant]`: pick a GGUF in the repo by quantization tag. */
export interface HfRepoSpec {
    kind: "hf-repo";
    raw: string;
    user: string;
    name: string;
    /** "user/name". */
    repo: string;
    /** Quantization tag as typed (matched case-insensitively), e.g. "Q8_0". Absent: the repo must hold one model. */
    quant?: string;
}

/** `hf:user/repo/path/file.gguf`: one named file (all parts if it is a split GGUF). */
export interface HfFileSpec {
    kind: "hf-file";
    raw: string;
    user: string;
    name: string;
    repo: string;
    /** Path inside the repo, "/"-separated, never absolute and without "." or ".." segments. */
    file: string;
}

/** A plain http(s) URL to a .gguf file. `#sha256=<hex>` pins its checksum. */
export interface UrlSpec {
    kind: "url";
    raw: string;
    /** The URL without its fragment. */
    url: string;
    sha256?: string;
}

/** A file on disk, used in place. */
export interface LocalSpec {
    kind: "local";
    raw: string;
    /** Absolute path. */
    path: string;
}

export type ModelSpec = HfRepoSpec | HfFileSpec | UrlSpec | LocalSpec;

export interface ParseModelSpecOptions {
    /**
     * Hub endpoint. URLs of the form `<endpoint or huggingface.co>/<user>/<repo>/resolve/main/<file>`
     * become {@link HfFileSpec}s (fetched from this endpoint, so a mirror set in HF_ENDPOINT is used)
     * to get token handling and checksum verification. Default: `https://huggingface.co`.
     */
    endpoint?: string;
    /** Base for relative local paths. Default: `process.cwd()`. */
    cwd?: string;
}

const USAGE =
    "expected hf:<user>/<repo>[:<quant>], hf:<user>/<repo>/<file>.gguf, an http(s) URL to a .gguf file, or a local path";

// Hub repo and user names: letters, digits, "-", "_", "." (no leading "." or "-").
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
const QUANT = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
const SHA256 = /^[0-9a-f]{64}$/;

function invalid(raw: string, why: string): InvalidModelSpecError {
    return new InvalidModelSpecError(`Invalid model spec ${JSON.stringify(raw)}: ${why}; ${USAGE}`);
}

function checkName(raw: string, what: string, value: string | undefined): string {
    if (!value) throw invalid(raw, `missing ${what}`);
    if (!NAME.test(value) || value.includes("..")) throw invalid(raw, `${what} ${JSON.stringify(value)} is not a valid name`);
    return value;
}

/** Validates a repo-relative file path so it can never escape the cache folder. */
export function checkRepoFilePath(raw: string, file: string): string {
    const parts = file.split("/");
    for (const part of parts) {
        if (part === "" || part === "." || part === ".." || part.includes("\\") || part.includes("\0")) {
            throw invalid(raw, `file path ${JSON.stringify(file)} is not a clean relative path`);
        }
    }
    return parts.join("/");
}

function parseHf(raw: string, body: string): HfRepoSpec | HfFileSpec {
    // Accept "hf://user/repo" too, as other tools write it that way.
    const rest = body.replace(/^\/\//, "");
    const [user, second, ...fileParts] = rest.split("/");
    if (fileParts.length === 0) {
        const [name, quant, ...extra] = (second ?? "").split(":");
        if (extra.length > 0) throw invalid(raw, "more than one ':' after the repo");
        const spec: HfRepoSpec = {
            kind: "hf-repo",
            raw,
            user: checkName(raw, "user", user),
            name: checkName(raw, "repo", name),
            repo: `${user}/${name}`,
        };
        if (quant !== undefined) {
            if (!QUANT.test(quant)) throw invalid(raw, `quant tag ${JSON.stringify(quant)} is not valid (e.g. Q8_0, Q4_K_M, F16)`);
            spec.quant = quant;
        }
        return spec;
    }
    const file = checkRepoFilePath(raw, fileParts.join("/"));
    if (second?.includes(":")) throw invalid(raw, "a quant tag cannot be combined with a file path");
    if (!file.toLowerCase().endsWith(".gguf")) throw invalid(raw, `${JSON.stringify(file)} is not a .gguf file`);
    return {
        kind: "hf-file",
        raw,
        user: checkName(raw, "user", user),
        name: checkName(raw, "repo", second),
        repo: `${user}/${second}`,
        file,
    };
}

function parseUrl(raw: string, endpoint: string): UrlSpec | HfFileSpec {
    let url: URL;
    try {
        url = new URL(raw);
    } catch {
        throw invalid(raw, "not a valid URL");
    }
    if (!url.hostname) throw invalid(raw, "URL has no host");
    let sha256: string | undefined;
    if (url.hash) {
        const m = /^#sha256=([0-9a-fA-F]{64})$/.exec(url.hash);
        if (!m?.[1]) throw invalid(raw, "the only URL fragment understood is #sha256=<64 hex digits>");
        sha256 = m[1].toLowerCase();
        url.hash = "";
    }
    const hub = new URL(endpoint);
    const isHub = url.origin === hub.origin || url.hostname === "huggingface.co" || url.hostname === "hf.co";
    // Only "main" maps onto the cache layout <user>/<repo>/<file>; other revisions stay plain URLs.
    const m = /^\/([^/]+)\/([^/]+)\/resolve\/main\/(.+)$/.exec(url.pathname);
    if (isHub && m?.[1] && m[2] && m[3] && sha256 === undefined) {
        const file = checkRepoFilePath(raw, m[3].split("/").map(decodeURIComponent).join("/"));
        const user = checkName(raw, "user", decodeURIComponent(m[1]));
        const name = checkName(raw, "repo", decodeURIComponent(m[2]));
        if (file.toLowerCase().endsWith(".gguf")) return { kind: "hf-file", raw, user, name, repo: `${user}/${name}`, file };
    }
    const last = decodeURIComponent(url.pathname.split("/").pop() ?? "");
    if (!last.toLowerCase().endsWith(".gguf")) throw invalid(raw, "URL does not name a .gguf file");
    const spec: UrlSpec = { kind: "url", raw, url: url.href };
    if (sha256 && SHA256.test(sha256)) spec.sha256 = sha256;
    return spec;
}

/** Parses a model spec string; throws {@link InvalidModelSpecError} with the accepted forms on bad input. */
export function parseModelSpec(raw: string, opts: ParseModelSpecOptions = {}): ModelSpec {
    const spec = raw.trim();
    if (spec === "") throw invalid(raw, "empty");
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]+):/.exec(spec)?.[1]?.toLowerCase();
    // One-letter "schemes" are Windows drive letters (C:\models\x.gguf), i.e. local paths.
    if (scheme === "hf" || scheme === "huggingface") return parseHf(spec, spec.slice(scheme.length + 1));
    if (scheme === "http" || scheme === "https") return parseUrl(spec, opts.endpoint ?? "https://huggingface.co");
    if (scheme === "file") {
        let p: string;
        try {
            p = fileURLToPath(spec);
        } catch {
            throw invalid(raw, "not a valid file: URL");
        }
        return { kind: "local", raw: spec, path: p };
    }
    if (scheme !== undefined) throw invalid(raw, `unsupported scheme "${scheme}:"`);
    return { kind: "local", raw: spec, path: path.resolve(opts.cwd ?? process.cwd(), spec) };
}

/** Split GGUF naming used by llama.cpp's gguf-split: `<base>-00001-of-00003.gguf`. */
export interface SplitInfo {
    /** Everything before "-NNNNN-of-NNNNN.gguf". */
    base: string;
    part: number;
    total: number;
}

const SPLIT = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i;

export function splitInfo(fileName: string): SplitInfo | undefined {
    const m = SPLIT.exec(fileName);
    if (!m?.[1] || !m[2] || !m[3]) return undefined;
    const part = Number(m[2]);
    const total = Number(m[3]);
    if (part < 1 || total < 2 || part > total) return undefined;
    return { base: m[1], part, total };
}

/** Name of part `part` (1-based) of a split set. */
export function splitPartName(info: SplitInfo, part: number): string {
    const pad = (n: number) => String(n).padStart(5, "0");
    return `${info.base}-${pad(part)}-of-${pad(info.total)}.gguf`;
}
