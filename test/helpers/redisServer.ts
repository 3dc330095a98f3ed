import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { delimiter, dirname, join } from "node:path";
import { freePort } from "../../bench/lib.js";

/** Where redis-server is, or undefined: suites skip with REDIS_SKIP_REASON then. */
export const REDIS_SERVER_BIN: string | undefined = [...(process.env.PATH ?? "").split(delimiter), "/usr/bin", "/usr/sbin", "/usr/local/bin"]
    .filter(Boolean)
    .map((dir) => join(dir, "redis-server"))
    .find((path) => existsSync(path));

export const REDIS_SKIP_REASON: string | false = REDIS_SERVER_BIN
    ? false
    : "redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)";

export interface RedisServer {
    url: string;
    port: number;
    /** The running process's pid. */
    readonly pid: number | undefined;
    /** SIGKILL, as a crash: no shutdown, connections reset. */
    kill(): Promise<void>;
    /** Starts a fresh, empty redis-server on the same port. */
    restart(): Promise<void>;
    /** SIGSTOP / SIGCONT: a Redis that holds connections open but answers nothing. */
    pause(): void;
    resume(): void;
    /** Runs one command through redis-cli and returns its output (for assertions on keys). */
    cli(...args: string[]): string;
    stop(): Promise<void>;
}


function ping(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = connect({ host: "127.0.0.1", port });
        const done = (ok: boolean) => {
            socket.destroy();
            resolve(ok);
        };
        socket.setTimeout(500, () => done(false));
        socket.once("error", () => done(false));
        socket.once("connect", () => socket.write("PING\r\n"));
        socket.once("data", (d) => done(d.toString().startsWith("+PONG")));
    });
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
    for (const child of running) child.kill("SIGKILL");
});

/**
 * Starts a throwaway redis-server on a free loopback port: no persistence (`--save ""`,
 * `--appendonly no`), nothing written to disk. Callers skip when REDIS_SKIP_REASON is set.
 */
export async function startRedisServer(): Promise<RedisServer> {
    if (!REDIS_SERVER_BIN) throw new Error(String(REDIS_SKIP_REASON));
    const port = await freePort();
    let child: ChildProcess | undefined;

    const launch = async () => {
        const proc = spawn(REDIS_SERVER_BIN!, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"], {
            stdio: "ignore",
        });
        running.add(proc);
        proc.once("exit", () => running.delete(proc));
        child = proc;
        const deadline = Date.now() + 10_000;
        while (!(await ping(port))) {
            if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode} (port ${port} taken?)`);
            if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port} within 10 s`);
            await new Promise((r) => setTimeout(r, 25));
        }
    };

    const terminate = (signal: NodeJS.Signals) =>
        new Promise<void>((resolve) => {
            const proc = child;
            if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
            proc.once("exit", () => resolve());
            if (signal === "SIGTERM") proc.kill("SIGCONT");
            proc.kill(signal);
        });

    await launch();
    return {
        url: `redis://127.0.0.1:${port}`,
        port,
        get pid() {
            return child?.pid;
        },
        kill: () => terminate("SIGKILL"),
        restart: async () => {
            await terminate("SIGKILL");
            await launch();
        },
        pause: () => void child?.kill("SIGSTOP"),
        resume: () => void child?.kill("SIGCONT"),
        cli: (...args) => spawnSync(join(dirname(REDIS_SERVER_BIN!), "redis-cli"), ["-p", String(port), ...args], { encoding: "utf8" }).stdout.trim(),
        stop: () => terminate("SIGTERM"),
    };
}
