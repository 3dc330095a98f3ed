import { readFileSync } from "node:fs";
import { extname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { CONFIG_KEYS, ENV_ALIASES, isSecretPath, type ConfigKey } from "./keys.js";
import { configSchema, type Config } from "./schema.js";

/** A configuration that cannot start the server. Each line names the key, the value and what is allowed. */
export class ConfigError extends Error {
    constructor(readonly problems: string[], readonly source?: string) {
        super(`Invalid configuration${source ? ` (${source})` : ""}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
        this.name = "ConfigError";
    }
}

export interface LoadConfigOptions {
    /** YAML or JSON file; its keys sit under the defaults and below env and flags. */
    file?: string;
    /** Defaults to process.env. */
    env?: NodeJS.ProcessEnv;
    /** Values from the command line keyed by dotted config path ("server.port"), already typed or strings. */
    flags?: Record<string, unknown>;
    /** Extra layer between defaults and file (hardware profiles). */
    base?: Record<string, unknown>;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

function setPath(target: Obj, path: string, value: unknown) {
    const parts = path.split(".");
    let node = target;
    for (const part of parts.slice(0, -1)) {
        if (!isObj(node[part])) node[part] = {};
        node = node[part] as Obj;
    }
    node[parts.at(-1)!] = value;
}

function deepMerge(base: Obj, over: Obj): Obj {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = isObj(v) && isObj(out[k]) ? deepMerge(out[k] as Obj, v) : v;
    return out;
}

function readFile(file: string): Obj {
    const path = resolve(file);
    let text: string;
    try {
        text = readFileSync(path, "utf8");
    } catch (err) {
        throw new ConfigError([`config file ${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
    }
    try {
        const data = extname(path).toLowerCase() === ".json" ? JSON.parse(text) : parseYaml(text);
        if (data == null) return {};
        if (!isObj(data)) throw new Error("the top level must be a mapping of keys");
        return data;
    } catch (err) {
        throw new ConfigError([`config file ${path} is not valid ${extname(path) === ".json" ? "JSON" : "YAML"}: ${(err as Error).message}`]);
    }
}

/** zod only says "Invalid input" for a union; say what a number-or-keyword key takes. */
function unionExpectation(issuePath: readonly PropertyKey[]): string | undefined {
    // models.<i>.<key> is documented as model.<key>
    const path = issuePath[0] === "models" ? ["model", ...issuePath.slice(2)].join(".") : issuePath.join(".");
    const key = CONFIG_KEYS.find((k) => k.path === path);
    if (key?.kind !== "number|enum") return undefined;
    return `expected a whole number or ${key.values!.map((v) => JSON.stringify(v)).join(" or ")}`;
}

/** Turns a string from env or argv into the key's type; returns an error message when it can't. */
function coerce(key: ConfigKey, raw: unknown, origin: string): { value?: unknown; error?: string } {
    if (typeof raw !== "string") return { value: raw };
    const shown = key.secret ? "<redacted>" : JSON.stringify(raw);
    switch (key.kind) {
        case "number": {
            const n = Number(raw);
            return raw.trim() !== "" && Number.isFinite(n) ? { value: n } : { error: `${key.path} (${origin}) = ${shown}: expected a number` };
        }
        case "boolean":
            if (/^(true|1|yes|on)$/i.test(raw)) return { value: true };
            if (/^(false|0|no|off)$/i.test(raw)) return { value: false };
            return { error: `${key.path} (${origin}) = ${shown}: expected true or false` };
        case "string[]":
            return { value: raw.split(",").map((s) => s.trim()).filter(Boolean) };
        case "number|enum":
            return { value: /^\d+$/.test(raw.trim()) ? Number(raw) : raw };
        default:
            return { value: raw };
    }
}

function layerFrom(entries: [ConfigKey, unknown, string][], problems: string[]): Obj {
    const layer: Obj = {};
    for (const [key, raw, origin] of entries) {
        const { value, error } = coerce(key, raw, origin);
        if (error) problems.push(error);
        else setPath(layer, key.path, value);
    }
    return layer;
}

function envLayer(env: NodeJS.ProcessEnv, problems: string[]): Obj {
    const byPath = new Map(CONFIG_KEYS.map((k) => [k.path, k]));
    const entries: [ConfigKey, unknown, string][] = [];
    for (const [alias, path] of Object.entries(ENV_ALIASES)) {
        const v = env[alias];
        if (v !== undefined && v !== "") entries.push([byPath.get(path)!, v, alias]);
    }
    for (const key of CONFIG_KEYS) {
        const v = env[key.env];
        if (v !== undefined && v !== "") entries.push([key, v, key.env]);
    }
    return layerFrom(entries, problems);
}

function flagLayer(flags: Record<string, unknown>, problems: string[]): Obj {
    const byPath = new Map(CONFIG_KEYS.map((k) => [k.path, k]));
    const entries: [ConfigKey, unknown, string][] = [];
    for (const [path, v] of Object.entries(flags)) {
        if (v === undefined) continue;
        const key = byPath.get(path);
        if (!key) {
            problems.push(`unknown option for ${path}`);
            continue;
        }
        entries.push([key, v, `--${key.flag}`]);
    }
    return layerFrom(entries, problems);
}

/** Keys that belong to one particular model file rather than to how it is run. */
const MODEL_IDENTITY_KEYS = new Set(["id", "path", "fallbackPath", "aliases", "prompts", "defaultPrompt", "pooling"]);

/**
 * Applies one layer over the accumulated config. `models:` replaces the list; the `model:`
 * shorthand (and every `model.*` env var or flag) edits the first model, so a layer can tune
 * the default or configured model without restating its path; a new path keeps only the tunings.
 */
function applyLayer(acc: Obj, layer: Obj, problems: string[], origin: string): Obj {
    const { model, ...rest } = layer;
    const out = deepMerge(acc, rest);
    if (model === undefined) return out;
    if (!isObj(model)) {
        problems.push(`model (${origin}) must be a mapping such as {path: ./model.gguf}`);
        return out;
    }
    const models = Array.isArray(out.models) ? [...out.models] : [];
    const previous = isObj(models[0]) ? (models[0] as Obj) : undefined;
    if (previous && model.path !== undefined && model.path !== previous.path) {
        // A new path is a different model: its identity (id, prompts, ...) starts afresh, while
        // tunings such as contextSize or gpuLayers (from a hardware profile, say) carry over.
        const tunings = Object.fromEntries(Object.entries(previous).filter(([k]) => !MODEL_IDENTITY_KEYS.has(k)));
        models[0] = deepMerge(tunings, model);
    } else {
        models[0] = previous ? deepMerge(previous, model) : model;
    }
    return { ...out, models };
}

function describeValue(root: unknown, path: PropertyKey[]): string {
    if (path.some((p) => typeof p === "string" && isSecretPath(p))) return "<redacted>";
    let v: unknown = root;
    for (const p of path) v = isObj(v) || Array.isArray(v) ? (v as Record<PropertyKey, unknown>)[p] : undefined;
    if (v === undefined) return "missing";
    const s = JSON.stringify(v);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Merges defaults < base < file < env < flags and validates the result with the one schema. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
    const problems: string[] = [];
    const fileObj = options.file ? readFile(options.file) : {};
    const layers: [Obj, string][] = [
        [options.base ?? {}, "defaults"],
        [fileObj, options.file ?? "file"],
        [envLayer(options.env ?? process.env, problems), "environment"],
        [flagLayer(options.flags ?? {}, problems), "flags"],
    ];
    const merged = layers.reduce((acc, [layer, origin]) => applyLayer(acc, layer, problems, origin), {} as Obj);
    if (problems.length) throw new ConfigError(problems, options.file);
    if (!Array.isArray(merged.models)) merged.models = [];
    const result = configSchema.safeParse(merged);
    if (!result.success) {
        const lines = result.error.issues.map((issue) => {
            const path = issue.path.length ? issue.path.join(".") : "(top level)";
            const unknown = issue.code === "unrecognized_keys" ? ` (unknown keys: ${issue.keys.join(", ")})` : "";
            return `${path} = ${describeValue(merged, issue.path)}: ${issue.code === "invalid_union" ? unionExpectation(issue.path) ?? issue.message : issue.message}${unknown}`;
        });
        throw new ConfigError(lines, options.file);
    }
    return result.data;
}
