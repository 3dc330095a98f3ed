import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";

export const BIN = fileURLToPath(new URL("../bin/embedding-server.js", import.meta.url));

export function percentile(sorted: number[], p: number): number {
    if (sorted.length === 0) return NaN;
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[i]!;
}

export function parseArgs(defaults: Record<string, string>): Record<string, string> {
    const out = { ...defaults };
    const argv = process.argv.slice(2);
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i]!;
        if (!a.startsWith("--")) continue;
        const [k, v] = a.slice(2).split("=", 2);
        out[k!] = v ?? argv[++i] ?? "";
    }
    return out;
}

export function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = createServer();
        srv.once("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const { port } = srv.address() as AddressInfo;
            srv.close(() => resolve(port));
        });
    });
}

/** Polls GET url until it answers 200. */
export async function waitHealthy(url: string, child: ChildProcess, timeoutMs = 180_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`${url}: process exited with ${child.exitCode}`);
        const ok = await fetch(url).then((r) => r.status === 200, () => false);
        if (ok) return;
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${url} not healthy within ${timeoutMs} ms`);
}

/**
 * Starts `embedding-server serve` on a free port and resolves once /health is 200.
 * Logs stay at warn so the benchmark measures serving, not logging.
 */
export async function startServer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, "serve", "--host", "127.0.0.1", "--port", String(port), "--log-level", "warn", ...args], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "inherit", "inherit"],
    });
    const url = `http://127.0.0.1:${port}`;
    await waitHealthy(`${url}/health`, child);
    return {
        url,
        child,
        stop: () =>
            new Promise<void>((resolve) => {
                if (child.exitCode !== null) return resolve();
                child.once("exit", () => resolve());
                child.kill("SIGTERM");
            }),
    };
}

/** Words for generating fresh, realistic-looking inputs that no cache has seen. */
const WORDS =
    "the of and to in is for on that with as by at from this be are it an or was which can model vector search query document embedding server local machine data retrieval semantic similarity ranking cluster token context batch throughput latency memory apple silicon metal cuda linux quantized weights attention layer pooling normalize cosine".split(
        " ",
    );

export function freshText(seed: number, words = 14): string {
    let x = (seed * 2654435761) >>> 0;
    const out: string[] = [];
    for (let i = 0; i < words; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        out.push(WORDS[x % WORDS.length]!);
    }
    return `${out.join(" ")} #${seed}`;
}

export async function residentMemoryBytes(url: string, headers: Record<string, string>): Promise<number> {
    const text = await (await fetch(`${url}/metrics`, { headers })).text();
    const m = /^process_resident_memory_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(text);
    return m ? Number(m[1]) : NaN;
}
