import { configSchema, modelConfigSchema } from "./schema.js";

/**
 * Every settable key, derived from the schema so the env and flag names can never
 * drift from what the schema accepts. `model.*` keys address the first model.
 */

export type LeafKind = "string" | "number" | "boolean" | "string[]" | "enum" | "number|enum";

export interface ConfigKey {
    /** Dotted path in the config file, e.g. "limits.maxQueuedTokens". */
    path: string;
    /** Environment variable, e.g. EMBEDDING_SERVER_LIMITS_MAX_QUEUED_TOKENS. */
    env: string;
    /** CLI flag without dashes, e.g. "limits.max-queued-tokens". */
    flag: string;
    kind: LeafKind;
    /** Allowed values for enums. */
    values?: string[];
    secret: boolean;
    description?: string;
}

interface ZodLike {
    _zod: { def: { type: string; innerType?: ZodLike; shape?: Record<string, ZodLike>; element?: ZodLike; options?: ZodLike[]; entries?: Record<string, string> } };
    description?: string;
}

function unwrap(schema: ZodLike): ZodLike {
    let s = schema;
    while (["default", "optional", "prefault", "nullable", "catch"].includes(s._zod.def.type) && s._zod.def.innerType) s = s._zod.def.innerType;
    return s;
}

function kindOf(schema: ZodLike): { kind: LeafKind; values?: string[] } | undefined {
    const s = unwrap(schema);
    const def = s._zod.def;
    switch (def.type) {
        case "string":
            return { kind: "string" };
        case "number":
            return { kind: "number" };
        case "boolean":
            return { kind: "boolean" };
        case "enum":
            return { kind: "enum", values: Object.values(def.entries ?? {}) };
        case "array":
            return unwrap(def.element!)._zod.def.type === "string" ? { kind: "string[]" } : undefined;
        case "union": {
            const enums = (def.options ?? []).map((o) => unwrap(o)._zod.def).filter((d) => d.type === "enum");
            return { kind: "number|enum", values: enums.flatMap((d) => Object.values(d.entries ?? {})) };
        }
        default:
            return undefined;
    }
}

const snake = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
const kebab = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
const SECRET = /key|token|password|secret/i;

function collect(prefix: string[], shape: Record<string, ZodLike>, out: ConfigKey[]) {
    for (const [name, child] of Object.entries(shape)) {
        const path = [...prefix, name];
        const inner = unwrap(child);
        if (inner._zod.def.type === "object" && inner._zod.def.shape) {
            collect(path, inner._zod.def.shape, out);
            continue;
        }
        const kind = kindOf(child);
        if (!kind) continue;
        out.push({
            path: path.join("."),
            env: `EMBEDDING_SERVER_${path.map(snake).join("_")}`,
            flag: path.map(kebab).join("."),
            secret: SECRET.test(name),
            ...kind,
        });
    }
}

function buildKeys(): ConfigKey[] {
    const out: ConfigKey[] = [];
    const { models: _models, ...rest } = (configSchema as unknown as ZodLike)._zod.def.shape!;
    collect([], rest, out);
    collect(["model"], (modelConfigSchema as unknown as ZodLike)._zod.def.shape!, out);
    return out;
}

export const CONFIG_KEYS: readonly ConfigKey[] = buildKeys();

/** Short names people actually type; they map onto the generic keys above. */
export const ENV_ALIASES: Readonly<Record<string, string>> = {
    EMBEDDING_SERVER_HOST: "server.host",
    EMBEDDING_SERVER_PORT: "server.port",
    EMBEDDING_SERVER_LOG_LEVEL: "server.logLevel",
    EMBEDDING_SERVER_MODEL: "model.path",
    EMBEDDING_SERVER_API_KEYS: "auth.apiKeys",
    EMBEDDING_SERVER_ADMIN_KEYS: "auth.adminKeys",
};

export function isSecretPath(path: string): boolean {
    return path.split(".").some((p) => SECRET.test(p));
}
