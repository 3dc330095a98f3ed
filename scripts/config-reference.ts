/**
 * Prints the configuration reference (every key, its env variable, flag, type and default)
 * as a Markdown table. README.md embeds its output; test/docs.test.ts keeps them in sync.
 */
import { CONFIG_KEYS } from "../src/config/keys.js";
import { loadConfig } from "../src/config/loader.js";

export function configReferenceTable(): string {
    const defaults = loadConfig({ env: {}, flags: { "model.path": "<required>" } }) as unknown as Record<string, unknown>;
    const valueAt = (path: string): unknown => {
        const parts = path.split(".");
        let node: unknown = parts[0] === "model" ? (defaults.models as unknown[])[0] : defaults[parts[0]!];
        for (const p of parts.slice(1)) node = (node as Record<string, unknown> | undefined)?.[p];
        return node;
    };
    const rows = CONFIG_KEYS.map((k) => {
        const v = valueAt(k.path);
        const shown = v === undefined ? "—" : k.path === "model.path" ? "required" : `\`${JSON.stringify(v)}\``;
        const type = k.values ? k.values.map((x) => `\`${x}\``).join(" \\| ") + (k.kind === "number|enum" ? " or a number" : "") : k.kind;
        return `| \`${k.path}\` | ${type} | ${shown} | \`${k.env}\` | \`--${k.flag}\` |`;
    });
    return ["| key | type | default | environment | flag |", "| --- | --- | --- | --- | --- |", ...rows].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(configReferenceTable());
