import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { homedir, userInfo } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Argv, CommandModule } from "yargs";

/** The launchd job label and the plist's file name. */
export const SERVICE_LABEL = "dev.embedding-server";

/** launchd sends SIGTERM on stop and SIGKILL this many seconds later: above server.drainTimeoutMs (30 s). */
export const EXIT_TIMEOUT_SECONDS = 40;

export interface ServiceArgs {
    action: "install" | "uninstall" | "print";
    config?: string;
    model?: string;
    host?: string;
    port?: string;
}

export interface PlistOptions {
    /** Absolute path of the node binary. */
    nodePath: string;
    /** Absolute path of bin/embedding-server.js. */
    binPath: string;
    /** Arguments after `serve`. */
    serveArgs: string[];
    /** Where relative paths in the config resolve (the folder `install` ran in). */
    workingDirectory: string;
    home: string;
    /** Extra environment for the job (launchd starts jobs with an almost empty one). */
    env: Record<string, string>;
}

export function plistPath(home = homedir()): string {
    return join(home, "Library", "LaunchAgents", `${SERVICE_LABEL}.plist`);
}

export function logDirectory(home = homedir()): string {
    return join(home, "Library", "Logs", "embedding-server");
}

/** The installed package's bin/embedding-server.js (symlinks resolved, so npx/npm link paths stay valid). */
export function binPath(): string {
    const bin = fileURLToPath(new URL("../../../bin/embedding-server.js", import.meta.url));
    return existsSync(bin) ? realpathSync(bin) : bin;
}

function xml(text: string): string {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

/** A launchd property list that runs `node bin/embedding-server.js serve …` at login and restarts it when it exits. */
export function buildPlist(options: PlistOptions): string {
    const logs = logDirectory(options.home);
    const string = (s: string) => `<string>${xml(s)}</string>`;
    const lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
        '<plist version="1.0">',
        "<dict>",
        "    <key>Label</key>",
        `    ${string(SERVICE_LABEL)}`,
        "    <key>ProgramArguments</key>",
        "    <array>",
        ...[options.nodePath, options.binPath, "serve", ...options.serveArgs].map((a) => `        ${string(a)}`),
        "    </array>",
        "    <key>WorkingDirectory</key>",
        `    ${string(options.workingDirectory)}`,
        "    <key>EnvironmentVariables</key>",
        "    <dict>",
        ...Object.entries(options.env).flatMap(([k, v]) => [`        <key>${xml(k)}</key>`, `        ${string(v)}`]),
        "    </dict>",
        "    <!-- Start at login (and at install), and start again whenever the server exits. -->",
        "    <key>RunAtLoad</key>",
        "    <true/>",
        "    <key>KeepAlive</key>",
        "    <true/>",
        "    <!-- At most one restart every 10 s, so a bad config does not spin. -->",
        "    <key>ThrottleInterval</key>",
        "    <integer>10</integer>",
        "    <!-- Stop sends SIGTERM; the server drains in-flight requests (server.drainTimeoutMs) before SIGKILL. -->",
        "    <key>ExitTimeOut</key>",
        `    <integer>${EXIT_TIMEOUT_SECONDS}</integer>`,
        "    <key>StandardOutPath</key>",
        `    ${string(join(logs, "embedding-server.log"))}`,
        "    <key>StandardErrorPath</key>",
        `    ${string(join(logs, "embedding-server.err.log"))}`,
        "</dict>",
        "</plist>",
        "",
    ];
    return lines.join("\n");
}

/** Local model paths become absolute; hf: specs and URLs stay as given. */
function modelArg(model: string): string {
    return /^(hf:|https?:\/\/)/.test(model) || isAbsolute(model) ? model : resolve(model);
}

/** The plist options for this process: its node, this package's bin, the flags given to `service`. */
export function plistOptionsFrom(argv: Pick<ServiceArgs, "config" | "model" | "host" | "port">, home = homedir()): PlistOptions {
    const serveArgs: string[] = [];
    if (argv.config) {
        const config = resolve(argv.config);
        if (!existsSync(config)) throw new Error(`config file ${config} does not exist`);
        serveArgs.push("--config", config);
    }
    if (argv.model) serveArgs.push("--model", modelArg(argv.model));
    if (argv.host) serveArgs.push("--host", argv.host);
    if (argv.port) serveArgs.push("--port", argv.port);
    // launchd's PATH is /usr/bin:/bin:/usr/sbin:/sbin; keep node's folder first for anything it spawns.
    const path = new Set([dirname(process.execPath), "/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]);
    const env: Record<string, string> = { PATH: [...path].join(":") };
    // Non-secret settings that decide where models come from. Keys and tokens belong in the config
    // file (chmod 600), not in a world-readable plist.
    for (const name of ["EMBEDDING_SERVER_CACHE_DIR", "HF_ENDPOINT", "HF_HUB_OFFLINE"]) {
        const value = process.env[name];
        if (value) env[name] = value;
    }
    return { nodePath: process.execPath, binPath: binPath(), serveArgs, workingDirectory: process.cwd(), home, env };
}

function launchctl(args: string[]): { ok: boolean; output: string } {
    const r = spawnSync("launchctl", args, { encoding: "utf8" });
    return { ok: r.status === 0, output: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? r.error.message : ""}`.trim() };
}

function notMacOS(action: string): void {
    process.stderr.write(
        `service ${action} manages a launchd agent, which exists only on macOS (this is ${process.platform}).\n` +
            "On Linux run the server under systemd or in a container; docs/deployment.md shows both.\n" +
            "`embedding-server service print` shows the plist on any OS.\n",
    );
    process.exitCode = 1;
}

export async function runService(argv: ServiceArgs): Promise<void> {
    const home = homedir();
    const file = plistPath(home);
    let options: PlistOptions;
    try {
        options = plistOptionsFrom(argv, home);
    } catch (err) {
        process.stderr.write(`error: ${(err as Error).message}\n`);
        process.exitCode = 2;
        return;
    }
    if (argv.action === "print") {
        process.stdout.write(buildPlist(options));
        return;
    }
    if (process.platform !== "darwin") return notMacOS(argv.action);

    const domain = `gui/${userInfo().uid}`;
    if (argv.action === "uninstall") {
        launchctl(["bootout", `${domain}/${SERVICE_LABEL}`]);
        if (existsSync(file)) rmSync(file);
        process.stderr.write(`stopped ${SERVICE_LABEL} and removed ${file}\n`);
        return;
    }

    mkdirSync(dirname(file), { recursive: true });
    mkdirSync(logDirectory(home), { recursive: true });
    // Replace a running copy: bootout fails harmlessly when none is loaded.
    launchctl(["bootout", `${domain}/${SERVICE_LABEL}`]);
    writeFileSync(file, buildPlist(options), { mode: 0o644 });
    const loaded = launchctl(["bootstrap", domain, file]);
    if (!loaded.ok) {
        process.stderr.write(`wrote ${file}, but launchctl bootstrap failed: ${loaded.output}\nTry: launchctl bootstrap ${domain} ${file}\n`);
        process.exitCode = 1;
        return;
    }
    const logs = logDirectory(home);
    process.stderr.write(
        [
            `installed ${SERVICE_LABEL}: it runs now and at every login, and restarts if it exits`,
            `  plist    ${file}`,
            `  command  ${[options.nodePath, options.binPath, "serve", ...options.serveArgs].join(" ")}`,
            `  logs     ${join(logs, "embedding-server.log")} (stderr: embedding-server.err.log)`,
            `  status   launchctl print ${domain}/${SERVICE_LABEL}`,
            `  restart  launchctl kickstart -k ${domain}/${SERVICE_LABEL}`,
            "  remove   embedding-server service uninstall",
            "",
        ].join("\n"),
    );
}

export const serviceCommand: CommandModule<object, ServiceArgs> = {
    command: "service <action>",
    describe: "Run the server as a macOS launchd agent (install, uninstall, print the plist)",
    builder: (yargs: Argv) =>
        yargs
            .positional("action", { choices: ["install", "uninstall", "print"] as const, demandOption: true, describe: "install: write and load the agent; uninstall: stop and remove it; print: show the plist (any OS)" })
            .option("config", { alias: "c", type: "string", describe: "YAML or JSON config file for serve (stored as an absolute path)" })
            .option("model", { alias: "m", type: "string", describe: "GGUF model path or hf: spec for serve" })
            .option("host", { type: "string", describe: "Address to listen on" })
            .option("port", { alias: "p", type: "string", describe: "Port" })
            .example("$0 service install --config ~/embedding-server.yaml", `writes ~/Library/LaunchAgents/${SERVICE_LABEL}.plist and starts it`)
            .example("$0 service print --model ./model.gguf", "the plist, without installing") as unknown as Argv<ServiceArgs>,
    handler: runService,
};
