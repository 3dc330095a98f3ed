import { HubNotFoundError, QuantAmbiguousError, QuantNotFoundError } from "./errors.js";
import type { HfFileSpec, HfRepoSpec } from "./modelSpec.js";
import { splitInfo, splitPartName } from "./modelSpec.js";

/** One file of a hub repository, as the tree API describes it. */
export interface RepoFile {
    /** Path inside the repo, "/"-separated. */
    path: string;
    size: number;
    /** sha256 of the content (LFS files: `lfs.oid`). */
    sha256?: string;
    /** Git blob sha1 (non-LFS files only, where the hub publishes no sha256). */
    gitSha1?: string;
}

/** A loadable model: one GGUF, or every part of a split GGUF in part order. */
export interface ModelCandidate {
    /** How the model is named in messages, e.g. "model-Q8_0.gguf" or "model-Q8_0-00001-of-00002.gguf (+1 part)". */
    label: string;
    /** Path without ".gguf" and without the split suffix; quant tags are matched against it. */
    stem: string;
    files: RepoFile[];
    /** Parts the split naming promises but the listing lacks. */
    missingParts: string[];
}

function dirOf(p: string): string {
    const i = p.lastIndexOf("/");
    return i < 0 ? "" : p.slice(0, i + 1);
}

function baseOf(p: string): string {
    return p.slice(p.lastIndexOf("/") + 1);
}

/**
 * Groups a repo's GGUF files into models. Multimodal projectors (mmproj-*.gguf) are left out:
 * they are not embedding models and would make every quant lookup ambiguous.
 */
export function groupGgufModels(files: RepoFile[]): ModelCandidate[] {
    const singles: ModelCandidate[] = [];
    const splits = new Map<string, { total: number; stem: string; dir: string; base: string; parts: Map<number, RepoFile> }>();
    for (const f of files) {
        const base = baseOf(f.path);
        if (!base.toLowerCase().endsWith(".gguf") || base.toLowerCase().startsWith("mmproj")) continue;
        const split = splitInfo(base);
        if (!split) {
            singles.push({ label: f.path, stem: f.path.slice(0, -".gguf".length), files: [f], missingParts: [] });
            continue;
        }
        const key = `${dirOf(f.path)}${split.base}\0${split.total}`;
        let group = splits.get(key);
        if (!group) {
            group = { total: split.total, stem: dirOf(f.path) + split.base, dir: dirOf(f.path), base: split.base, parts: new Map() };
            splits.set(key, group);
        }
        group.parts.set(split.part, f);
    }
    const grouped: ModelCandidate[] = [];
    for (const g of splits.values()) {
        const info = { base: g.base, part: 1, total: g.total };
        const present: RepoFile[] = [];
        const missing: string[] = [];
        for (let part = 1; part <= g.total; part++) {
            const f = g.parts.get(part);
            if (f) present.push(f);
            else missing.push(g.dir + splitPartName(info, part));
        }
        const first = g.dir + splitPartName(info, 1);
        grouped.push({ label: `${first} (+${g.total - 1} part${g.total > 2 ? "s" : ""})`, stem: g.stem, files: present, missingParts: missing });
    }
    return [...singles, ...grouped].sort((a, b) => a.label.localeCompare(b.label));
}

function escapeRegExp(s: string): string {
    return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * True when `tag` appears in `stem` as a whole quant token, case-insensitively. "Q4_K" must not
 * pick "Q4_K_M", "F16" must not pick "BF16", "Q4_0" must not pick "Q4_0_4_4".
 */
export function matchesQuant(stem: string, tag: string): boolean {
    const re = new RegExp(`(?:^|[^A-Za-z0-9])${escapeRegExp(tag)}(?![A-Za-z0-9_])`, "i");
    return re.test(stem);
}

function listing(candidates: ModelCandidate[]): string {
    return candidates.length === 0 ? "(none)" : candidates.map((c) => `  ${c.label}`).join("\n");
}

function complete(spec: string, c: ModelCandidate): ModelCandidate {
    if (c.missingParts.length > 0) {
        throw new HubNotFoundError(`${spec}: split model ${c.label} is incomplete on the hub; missing ${c.missingParts.join(", ")}`);
    }
    return c;
}

/** Picks the model for `hf:user/repo[:quant]`, or explains which files exist. */
export function selectByQuant(spec: HfRepoSpec, files: RepoFile[]): ModelCandidate {
    const all = groupGgufModels(files);
    if (spec.quant === undefined) {
        const only = all[0];
        if (all.length === 1 && only) return complete(spec.raw, only);
        if (all.length === 0) {
            throw new QuantNotFoundError(`hf:${spec.repo} contains no GGUF files`, []);
        }
        throw new QuantAmbiguousError(
            `hf:${spec.repo} holds ${all.length} GGUF models; name one with hf:${spec.repo}:<quant> (e.g. :Q8_0) or hf:${spec.repo}/<file>.gguf. Available:\n${listing(all)}`,
            all.map((c) => c.label),
        );
    }
    const quant = spec.quant;
    const matching = all.filter((c) => matchesQuant(c.stem, quant));
    const one = matching[0];
    if (matching.length === 1 && one) return complete(spec.raw, one);
    if (matching.length === 0) {
        throw new QuantNotFoundError(
            `No GGUF file in hf:${spec.repo} matches quant "${quant}". Available:\n${listing(all)}`,
            all.map((c) => c.label),
        );
    }
    throw new QuantAmbiguousError(
        `Quant "${quant}" matches ${matching.length} GGUF models in hf:${spec.repo}; name the file with hf:${spec.repo}/<file>.gguf. Matching:\n${listing(matching)}`,
        matching.map((c) => c.label),
    );
}

/** Finds `hf:user/repo/file.gguf` in a listing; a split part brings its whole set. */
export function selectNamedFile(spec: HfFileSpec, files: RepoFile[]): ModelCandidate {
    const exact = files.find((f) => f.path === spec.file);
    if (!exact) {
        const ggufs = groupGgufModels(files);
        throw new HubNotFoundError(`${spec.file} not found in hf:${spec.repo}. GGUF files there:\n${listing(ggufs)}`);
    }
    const split = splitInfo(baseOf(spec.file));
    if (!split) return { label: exact.path, stem: exact.path.replace(/\.gguf$/i, ""), files: [exact], missingParts: [] };
    const stem = dirOf(spec.file) + split.base;
    const group = groupGgufModels(files).find((c) => c.stem === stem && c.files.length + c.missingParts.length === split.total);
    if (!group) throw new HubNotFoundError(`${spec.file}: cannot find the other parts of this split model in hf:${spec.repo}`);
    return complete(spec.raw, group);
}
