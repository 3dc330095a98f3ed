import type { Argv, CommandModule } from "yargs";
import { CONFIG_KEYS } from "../../config/keys.js";
import { ConfigError, loadConfig } from "../../config/loader.js";
import type { Config } from "../../config/schema.js";
import { DEFAULT_MODEL } from "../../models/defaultModel.js";
import { PROFILE_NAMES, loadProfile, withQuantization, type ProfileName } from "../../config/profiles.js";
import { createLogger } from "../../observability/logger.js";
import { createServer } from "../../server.js";

interface ServeArgs {
    config?: string;
    model?: string;
    host?: string;
    port?: string;
    "api-key"?: string[];
    "admin-key"?: string[];
    "log-level"?: string;
    profile?: string;
    [key: string]: unknown;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** Listening beyond loopback with no API keys lets anyone on the network use the server. */
export function openHostWarning(host: string, apiKeys: readonly string[]): string | undefined {
    if (LOOPBACK.test(host) || apiKeys.length > 0) return undefined;
    return `listening on ${host} with no API keys: anyone who can reach this port can use the server. Set --api-key or EMBEDDING_SERVER_API_KEYS`;
}

/** Collects the config keys given on the command line, keyed by dotted path. */
function flagsFrom(argv: ServeArgs): Record<string, unknown> {
    const flags: Record<string, unknown> = {};
    for (const key of CONFIG_KEYS) if (argv[key.flag] !== undefined) flags[key.path] = argv[key.flag];
    const short: [keyof ServeArgs, string][] = [
        ["model", "model.path"],
        ["host", "server.host"],
        ["port", "server.port"],
        ["api-key", "auth.apiKeys"],
        ["admin-key", "auth.adminKeys"],
        ["log-level", "server.logLevel"],
    ];
    for (const [arg, path] of short) {
        const v = argv[arg];
        if (v === undefined) continue;
        // Repeatable flags may also carry comma lists: --api-key a,b --api-key c
        flags[path] = Array.isArray(v) ? v.flatMap((s) => String(s).split(",")).map((s) => s.trim()).filter(Boolean) : v;
    }
    return flags;
}

export async function runServe(argv: ServeArgs): Promise<void> {
    let config: Config;
    const configFile = argv.config ?? process.env.EMBEDDING_SERVER_CONFIG;
    // The default model sits below every source: any model from file, env or flags replaces it.
    const profileName = (argv.profile ?? process.env.EMBEDDING_SERVER_PROFILE) as ProfileName | undefined;
    if (profileName !== undefined && !PROFILE_NAMES.includes(profileName)) {
        console.error(`--profile = ${JSON.stringify(profileName)}: expected one of ${PROFILE_NAMES.join(", ")}`);
        process.exit(2);
    }
    const profile = profileName ? loadProfile(profileName) : undefined;
    const defaults: Record<string, unknown> = profile
        ? {
              ...profile.layer,
              // The profile picks the default model's quantization; if the hub lacks it, the stock one is used.
              models: [{ ...DEFAULT_MODEL, path: withQuantization(DEFAULT_MODEL.path, profile.quantization), fallbackPath: DEFAULT_MODEL.path }],
          }
        : { models: [DEFAULT_MODEL] };
    const load = () => loadConfig({ file: configFile, flags: flagsFrom(argv), base: defaults });
    try {
        config = load();
    } catch (err) {
        if (err instanceof ConfigError) {
            console.error(err.message);
            process.exit(2);
        }
        throw err;
    }
    const logger = createLogger(config.server.logLevel);
    if (profile) logger.info({ profile: profile.name }, profile.explanation);
    const warning = openHostWarning(config.server.host, config.auth.apiKeys);
    if (warning) logger.warn({ host: config.server.host }, warning);
    const server = await createServer({ config, logger });
    let shuttingDown = false;
    const shutdown = async (signal: string) => {
        if (shuttingDown) return;
        shuttingDown = true;
        logger.info({ signal, drainTimeoutMs: config.server.drainTimeoutMs }, "shutting down: draining in-flight requests");
        try {
            await server.close();
            logger.info("shutdown complete");
            process.exit(0);
        } catch (err) {
            logger.error({ err }, "shutdown failed");
            process.exit(1);
        }
    };
    process.on("SIGTERM", () => void shutdown("SIGTERM"));
    process.on("SIGINT", () => void shutdown("SIGINT"));
    // SIGHUP re-reads the config file and swaps models in place; other settings need a restart.
    process.on("SIGHUP", () => {
        if (shuttingDown) return;
        let next: Config;
        try {
            next = load();
        } catch (err) {
            logger.error({ err: (err as Error).message }, "SIGHUP: configuration rejected; keeping the current models");
            return;
        }
        server.registry.reconcile(next.models).then(
            (changes) => logger.info(changes, "SIGHUP: models reloaded"),
            (err) => logger.error({ err: (err as Error).message }, "SIGHUP: model reload failed; the previous models keep serving"),
        );
    });

    const address = await server.app.listen({ host: config.server.host, port: config.server.port });
    logger.info({ address, models: config.models.map((m) => m.id ?? m.path) }, "listening; loading models");
    try {
        await server.loadModels();
    } catch (err) {
        logger.fatal({ err: (err as Error).message }, "a model failed to load");
        await server.close().catch(() => undefined);
        process.exit(1);
    }
    logger.info({ address }, "ready");
}

export const serveCommand: CommandModule<object, ServeArgs> = {
    command: "serve",
    describe: "Serve embeddings over HTTP",
    builder: (yargs: Argv) => {
        let y = yargs
            .option("config", { alias: "c", type: "string", describe: "YAML or JSON config file (env: EMBEDDING_SERVER_CONFIG)" })
            .option("model", { alias: "m", type: "string", describe: "GGUF model path (model.path)" })
            .option("host", { type: "string", describe: "Address to listen on (server.host, default 127.0.0.1)" })
            .option("port", { alias: "p", type: "string", describe: "Port (server.port, default 8080)" })
            .option("api-key", { type: "string", array: true, describe: "Require this API key; repeatable or comma-separated (auth.apiKeys)" })
            .option("admin-key", { type: "string", array: true, describe: "Key for admin routes (auth.adminKeys)" })
            .option("profile", { type: "string", choices: PROFILE_NAMES, describe: "Hardware profile: quantization, context, batch, GPU offload (env EMBEDDING_SERVER_PROFILE)" })
            .option("log-level", { type: "string", describe: "fatal|error|warn|info|debug|trace|silent (server.logLevel)" });
        for (const key of CONFIG_KEYS) {
            y = y.option(key.flag, {
                // Strings here; the config loader coerces them so errors name the key and the value.
                type: "string",
                array: key.kind === "string[]" ? true : undefined,
                describe: `${key.kind}${key.values ? `: ${key.values.join("|")}` : ""} (env ${key.env})`,
                group: "Configuration keys (flag > env > file > default):",
            });
        }
        return y as unknown as Argv<ServeArgs>;
    },
    handler: runServe,
};
