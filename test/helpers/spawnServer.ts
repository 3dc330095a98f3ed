import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../../bin/embedding-server.js", import.meta.url));

export interface SpawnedServer {
    child: ChildProcess;
    url: string;
    /** Every JSON log line printed so far. */
    logs: Record<string, unknown>[];
    stderr: string[];
    stop(signal?: NodeJS.Signals): Promise<number | null>;
    /** Resolves once a log line with this msg has been printed. */
    waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** Runs the real CLI (`embedding-server serve …`) and waits until it logs "ready". */
export async function spawnServer(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<SpawnedServer> {
    const child = spawn(process.execPath, [BIN, "serve", "--port", "0", ...args], {
        env: { ...process.env, ...options.env },
        stdio: ["ignore", "pipe", "pipe"],
    });
    const logs: Record<string, unknown>[] = [];
    const stderr: string[] = [];
    createInterface({ input: child.stderr! }).on("line", (line) => stderr.push(line));
    const ready = new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`server not ready in time; stderr: ${stderr.join("\n")}; logs: ${JSON.stringify(logs)}`)), options.timeoutMs ?? 60_000);
        createInterface({ input: child.stdout! }).on("line", (line) => {
            try {
                const entry = JSON.parse(line) as Record<string, unknown>;
                logs.push(entry);
                if (entry.msg === "ready") {
                    clearTimeout(timer);
                    resolve(String(entry.address));
                }
            } catch {
                stderr.push(line);
            }
        });
        child.once("exit", (code) => {
            clearTimeout(timer);
            reject(new Error(`server exited with ${code} before ready; stderr: ${stderr.join("\n")}; logs: ${JSON.stringify(logs)}`));
        });
    });
    const url = await ready;
    return {
        child,
        url,
        logs,
        stderr,
        async waitForLog(msg: string, timeoutMs = 10_000) {
            const deadline = Date.now() + timeoutMs;
            for (;;) {
                const hit = logs.find((l) => l.msg === msg);
                if (hit) return hit;
                if (Date.now() > deadline) throw new Error(`no "${msg}" log line within ${timeoutMs} ms`);
                await new Promise((r) => setTimeout(r, 5));
            }
        },
        async stop(signal = "SIGTERM") {
            if (child.exitCode !== null) return child.exitCode;
            child.kill(signal);
            const [code] = (await once(child, "exit")) as [number | null];
            return code;
        },
    };
}
