/**
 * Several embedding-server instances behind nginx, on loopback, with the shipped nginx config.
 *
 *   npm run cluster -- [--model file.gguf] [--instances 3] [--concurrency 8] [--duration 6000] [--threads N]
 *
 * --threads is model.threads per instance; default: the cores divided among the instances.
 *
 * Starts the instances (`embedding-server serve --server.trust-proxy true`), Redis (redis.url: shared
 * embedding cache and rate limits) when redis-server is installed, and nginx running deploy/nginx/embedding-server.conf with only the
 * upstream and listen addresses replaced. Then it drives steady load through nginx, SIGKILLs one
 * instance mid-run, restarts it on the same port and checks that no client request failed, that
 * the survivors carried the load while it was down and that it takes traffic again. Responses are
 * attributed to instances by the X-Upstream header ($upstream_addr) the nginx config adds. With
 * Redis it also checks that a text embedded on one instance is a Redis cache hit on another.
 *
 * `startCluster` is also used by bench/cluster.ts and `runFailover` by test/cluster.test.ts.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { connect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BIN, freePort, freshText, parseArgs, percentile, waitHealthy } from "../bench/lib.js";
import { CONFIG_KEYS } from "../src/config/keys.js";

export const NGINX_TEMPLATE = fileURLToPath(new URL("../deploy/nginx/embedding-server.conf", import.meta.url));

/** The nginx binary ($NGINX, PATH, or Debian's /usr/sbin/nginx), or undefined when none is installed. */
export function findNginx(): string | undefined {
    return findBinary("nginx", process.env.NGINX);
}

export function findRedisServer(): string | undefined {
    return findBinary("redis-server", process.env.REDIS_SERVER);
}

function findBinary(name: string, override: string | undefined): string | undefined {
    if (override) return existsSync(override) ? override : undefined;
    const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/local/sbin", "/usr/bin"];
    return dirs.filter(Boolean).map((d) => join(d, name)).find((p) => existsSync(p));
}

/** The flag that points the server at Redis (shared embedding cache and rate limits), when this build has one. */
export function redisCacheFlag(): string | undefined {
    return (CONFIG_KEYS.find((k) => k.path === "redis.url") ?? CONFIG_KEYS.find((k) => /redis.*url$/i.test(k.path)))?.flag;
}

/** Sum of embedding_cache_hits_total{layer="redis"} on one instance. */
async function redisCacheHits(url: string): Promise<number> {
    const text = await (await fetch(`${url}/metrics`)).text();
    let sum = 0;
    for (const m of text.matchAll(/^embedding_cache_hits_total\{([^}]*)\} (\S+)$/gm)) if (m[1]!.includes('layer="redis"')) sum += Number(m[2]);
    return sum;
}

/**
 * Embeds one new text on the first instance, then the same text on the last one: with a shared
 * Redis cache the second is a Redis hit there. Returns that instance's increase in Redis hits.
 */
export async function checkSharedCache(cluster: Cluster): Promise<number> {
    const first = cluster.instances[0]!;
    const other = cluster.instances[cluster.instances.length - 1]!;
    const body = JSON.stringify({ input: `shared cache probe ${process.pid} ${Date.now()}` });
    const post = (url: string) => fetch(`${url}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body }).then((r) => r.json());
    await post(first.url);
    // The first instance writes to Redis next to answering; give the write a moment.
    await new Promise((r) => setTimeout(r, 300));
    const before = await redisCacheHits(other.url);
    await post(other.url);
    return (await redisCacheHits(other.url)) - before;
}

/**
 * deploy/nginx/embedding-server.conf with the upstream servers replaced by `upstreams` (host:port,
 * keeping the first server line's parameters such as max_fails) and `listen 80;` by `listen`.
 * Everything else is the shipped file, byte for byte.
 */
export function renderNginxSite(template: string, options: { upstreams: string[]; listen: string }): string {
    const block = /(upstream\s+embedding_server\s*\{)([\s\S]*?)(\n\})/.exec(template);
    if (!block) throw new Error(`${NGINX_TEMPLATE}: no "upstream embedding_server { … }" block`);
    const body = block[2]!;
    const serverLine = /^([ \t]*)server[ \t]+\S+([^;\n]*);[ \t]*$/m;
    const first = serverLine.exec(body);
    if (!first) throw new Error(`${NGINX_TEMPLATE}: the upstream block has no server lines`);
    const [indent, params] = [first[1]!, first[2]!];
    const lines = options.upstreams.map((u) => `${indent}server ${u}${params};`).join("\n");
    // Keep the comments; put the generated servers where the first shipped one was.
    let replaced = false;
    const newBody = body
        .split("\n")
        .flatMap((line) => {
            if (!serverLine.test(line)) return [line];
            if (replaced) return [];
            replaced = true;
            return [lines];
        })
        .join("\n");
    let site = template.slice(0, block.index) + block[1] + newBody + block[3] + template.slice(block.index + block[0].length);
    const listen = /^([ \t]*)listen[ \t]+80;[ \t]*$/m;
    if (!listen.test(site)) throw new Error(`${NGINX_TEMPLATE}: no "listen 80;" line`);
    site = site.replace(listen, `$1listen ${options.listen};`);
    return site;
}

/** A minimal nginx.conf around the site file, with every path inside `dir`. */
export function renderNginxMain(dir: string, siteFile: string): string {
    return [
        "worker_processes 1;",
        `error_log ${dir}/error.log warn;`,
        "events { worker_connections 1024; }",
        "http {",
        '    log_format upstream \'$remote_addr "$request" $status $request_time upstream=$upstream_addr upstream_status=$upstream_status\';',
        `    access_log ${dir}/access.log upstream;`,
        ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `    ${t}_temp_path ${dir}/temp/${t};`),
        `    include ${siteFile};`,
        "}",
        "",
    ].join("\n");
}

export interface Instance {
    port: number;
    url: string;
    child: ChildProcess;
    /** The last lines the process printed, for error messages. */
    output: string[];
    /** SIGKILL, no drain: what a crash or an OOM kill looks like. */
    kill(): Promise<void>;
    /** Starts it again on the same port; resolves once /health is 200. */
    restart(): Promise<void>;
    /** SIGTERM and wait for exit. */
    stop(): Promise<void>;
}

export interface ClusterOptions {
    /** GGUF model path for every instance. */
    model: string;
    instances?: number;
    /** Put nginx in front (default true). */
    nginx?: boolean;
    /** Start Redis and point the instances' cache at it: "auto" (default) when the config has a Redis cache key. */
    redis?: boolean | "auto";
    /** Extra `serve` arguments for every instance. */
    serveArgs?: string[];
    log?: (message: string) => void;
}

export interface Cluster {
    /** nginx's URL, or the first instance's when started without nginx. */
    url: string;
    instances: Instance[];
    nginxDir?: string;
    redisUrl?: string;
    /** Stops nginx, the instances and Redis, and removes the temporary directory. */
    stop(): Promise<void>;
}

function tail(lines: string[], child: ChildProcess): void {
    const push = (chunk: Buffer) => {
        for (const line of chunk.toString().split("\n")) if (line) lines.push(line);
        if (lines.length > 50) lines.splice(0, lines.length - 50);
    };
    child.stdout?.on("data", push);
    child.stderr?.on("data", push);
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    await exited;
}

function startInstance(port: number, args: string[]): Instance {
    const output: string[] = [];
    const spawnOne = () => {
        const child = spawn(process.execPath, [BIN, "serve", "--host", "127.0.0.1", "--port", String(port), "--log-level", "warn", ...args], {
            stdio: ["ignore", "pipe", "pipe"],
        });
        tail(output, child);
        return child;
    };
    const instance: Instance = {
        port,
        url: `http://127.0.0.1:${port}`,
        child: spawnOne(),
        output,
        kill: () => stopChild(instance.child, "SIGKILL"),
        async restart() {
            await instance.kill();
            instance.child = spawnOne();
            await waitHealthy(`${instance.url}/health`, instance.child, 60_000);
        },
        stop: () => stopChild(instance.child, "SIGTERM"),
    };
    return instance;
}

async function startRedis(binary: string, port: number, dir: string): Promise<ChildProcess> {
    const child = spawn(binary, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
        if (await tcpOpen(port)) return child;
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("redis-server did not start within 10 s");
}

function tcpOpen(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = connect(port, "127.0.0.1");
        socket.once("connect", () => {
            socket.destroy();
            resolve(true);
        });
        socket.once("error", () => resolve(false));
    });
}

/** Starts N instances, optionally Redis, and nginx in front; resolves once nginx answers /health with 200. */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
    const log = options.log ?? (() => undefined);
    const count = options.instances ?? 3;
    const useNginx = options.nginx ?? true;
    const dir = mkdtempSync(join(tmpdir(), "embedding-cluster-"));
    // nginx's workers drop root for nobody and must reach the temp folders inside.
    chmodSync(dir, 0o755);
    const started: { stop(): Promise<void> }[] = [];
    const cleanup = async () => {
        for (const s of started.reverse()) await s.stop().catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
    };
    try {
        const serveArgs = ["--model", options.model, "--server.trust-proxy", "true", ...(options.serveArgs ?? [])];

        let redisUrl: string | undefined;
        const flag = redisCacheFlag();
        const redisBinary = findRedisServer();
        const wantRedis = options.redis === "auto" || options.redis === undefined ? Boolean(flag && redisBinary) : options.redis;
        if (wantRedis) {
            if (!flag) throw new Error("this build has no Redis cache key in its config");
            if (!redisBinary) throw new Error("redis-server is not installed");
            const port = await freePort();
            const redis = await startRedis(redisBinary, port, dir);
            started.push({ stop: () => stopChild(redis, "SIGTERM") });
            redisUrl = `redis://127.0.0.1:${port}`;
            serveArgs.push(`--${flag}`, redisUrl);
            log(`redis on ${redisUrl}`);
        }

        const instances: Instance[] = [];
        for (let i = 0; i < count; i++) {
            const instance = startInstance(await freePort(), serveArgs);
            instances.push(instance);
            started.push({ stop: () => instance.stop() });
        }
        await Promise.all(
            instances.map((inst) =>
                waitHealthy(`${inst.url}/health`, inst.child, 60_000).catch((err: Error) => {
                    throw new Error(`${err.message}\n${inst.output.join("\n")}`);
                }),
            ),
        );
        log(`instances on ports ${instances.map((i) => i.port).join(", ")}`);

        if (!useNginx) return { url: instances[0]!.url, instances, redisUrl, stop: cleanup };

        const nginx = findNginx();
        if (!nginx) throw new Error("nginx is not installed");
        const port = await freePort();
        const siteFile = join(dir, "embedding-server.conf");
        const site = renderNginxSite(readFileSync(NGINX_TEMPLATE, "utf8"), { upstreams: instances.map((i) => `127.0.0.1:${i.port}`), listen: `127.0.0.1:${port}` });
        writeFileSync(siteFile, site);
        mkdirSync(join(dir, "temp"), { mode: 0o755 });
        writeFileSync(join(dir, "nginx.conf"), renderNginxMain(dir, siteFile));
        const nginxArgs = ["-p", dir, "-e", join(dir, "error.log"), "-c", join(dir, "nginx.conf")];
        const globals = `daemon off; pid ${join(dir, "nginx.pid")};`;
        const check = spawnSync(nginx, [...nginxArgs, "-g", globals, "-t"], { encoding: "utf8" });
        if (check.status !== 0) throw new Error(`nginx -t rejected the generated config:\n${check.stderr}`);
        const child = spawn(nginx, [...nginxArgs, "-g", globals], { stdio: ["ignore", "ignore", "pipe"] });
        const output: string[] = [];
        tail(output, child);
        started.push({ stop: () => stopChild(child, "SIGQUIT") });
        const url = `http://127.0.0.1:${port}`;
        await waitHealthy(`${url}/health`, child, 10_000).catch((err: Error) => {
            throw new Error(`${err.message}\n${output.join("\n")}\n${readFileSync(join(dir, "error.log"), "utf8")}`);
        });
        log(`nginx on ${url} (config in ${dir})`);
        return { url, instances, nginxDir: dir, redisUrl, stop: cleanup };
    } catch (err) {
        await cleanup();
        throw err;
    }
}

/** One client request as the load generator saw it; times in ms since the run started. */
export interface Sample {
    start: number;
    end: number;
    status: number | string;
    /** nginx's $upstream_addr: "127.0.0.1:P", or "A, B" when the request was retried on B. */
    upstream: string;
}

export interface FailoverOptions {
    model: string;
    instances?: number;
    concurrency?: number;
    /** Least run time in ms; the run continues (up to maxDurationMs) until the restarted instance has served again. */
    durationMs?: number;
    maxDurationMs?: number;
    /** When the victim is SIGKILLed, and how long it stays down before the restart. */
    killAtMs?: number;
    downMs?: number;
    serveArgs?: string[];
    log?: (message: string) => void;
}

export interface FailoverReport {
    instances: number[];
    victim: number;
    redisUrl?: string;
    concurrency: number;
    killAt: number;
    restartAt: number;
    readyAt: number;
    seconds: number;
    requests: number;
    failures: { status: number | string; count: number }[];
    /** Responses that nginx got only after trying another instance first. */
    retried: number;
    /** 200s per instance port, by when the request started. */
    served: { beforeKill: Record<number, number>; whileDown: Record<number, number>; afterRestart: Record<number, number> };
    p50: number;
    p99: number;
    /** With Redis: Redis cache hits on another instance for a text the first one embedded. */
    sharedCacheHits?: number;
    /** What failed, empty when the run proved the failover. */
    problems: string[];
}

function servedPort(upstream: string): number {
    const last = upstream.split(",").pop()?.trim() ?? "";
    return Number(last.slice(last.lastIndexOf(":") + 1));
}

/**
 * Runs the failover scenario: steady load through nginx, SIGKILL one instance, restart it on the
 * same port, and judge the result (see FailoverReport.problems).
 */
export async function runFailover(options: FailoverOptions): Promise<FailoverReport> {
    const concurrency = options.concurrency ?? 8;
    const durationMs = options.durationMs ?? 6000;
    const maxDurationMs = options.maxDurationMs ?? 20_000;
    const killAtMs = options.killAtMs ?? 1500;
    const downMs = options.downMs ?? 1500;
    const cluster = await startCluster({ model: options.model, instances: options.instances ?? 3, serveArgs: options.serveArgs, log: options.log });
    try {
        const ports = cluster.instances.map((i) => i.port);
        const victim = cluster.instances[1]!;
        const samples: Sample[] = [];
        const t0 = performance.now();
        const now = () => performance.now() - t0;
        let killAt = Infinity;
        let restartAt = Infinity;
        let readyAt = Infinity;
        let done = false;
        let seq = 0;

        const victimServedAfterRestart = () => samples.filter((s) => s.start >= readyAt && s.status === 200 && servedPort(s.upstream) === victim.port).length;
        const client = async () => {
            while (!done) {
                const i = seq++;
                const start = now();
                let status: number | string;
                let upstream = "";
                try {
                    const res = await fetch(`${cluster.url}/v1/embeddings`, {
                        method: "POST",
                        headers: { "content-type": "application/json", "x-request-id": `cluster-${i}` },
                        body: JSON.stringify({ input: freshText(i) }),
                    });
                    upstream = res.headers.get("x-upstream") ?? "";
                    const text = await res.text();
                    if (res.status !== 200) status = `HTTP ${res.status}${res.headers.get("content-type")?.includes("json") ? "" : " from nginx"}`;
                    else if (!(JSON.parse(text) as { data?: { embedding: number[] }[] }).data?.[0]?.embedding.length) status = "200 without an embedding";
                    else if (res.headers.get("x-request-id") !== `cluster-${i}`) status = "x-request-id not echoed";
                    else status = 200;
                } catch (err) {
                    status = (err as Error).cause ? String((err as Error & { cause: Error }).cause.message) : (err as Error).message;
                }
                samples.push({ start, end: now(), status, upstream });
                const t = now();
                if (t >= maxDurationMs || (t >= durationMs && restartAt !== Infinity && victimServedAfterRestart() >= concurrency)) done = true;
            }
        };
        const chaos = async () => {
            await new Promise((r) => setTimeout(r, killAtMs));
            killAt = now();
            await victim.kill();
            options.log?.(`SIGKILL instance :${victim.port} at ${(killAt / 1000).toFixed(2)} s`);
            await new Promise((r) => setTimeout(r, downMs));
            restartAt = now();
            await victim.restart().catch((err: Error) => {
                throw new Error(`${err.message}\n${victim.output.join("\n")}`);
            });
            readyAt = now();
            options.log?.(`restarted :${victim.port} at ${(restartAt / 1000).toFixed(2)} s, healthy at ${(readyAt / 1000).toFixed(2)} s`);
        };
        await Promise.all([chaos(), ...Array.from({ length: concurrency }, client)]);
        const seconds = now() / 1000;
        const sharedCacheHits = cluster.redisUrl ? await checkSharedCache(cluster) : undefined;

        const count = (filter: (s: Sample) => boolean) => {
            const out: Record<number, number> = Object.fromEntries(ports.map((p) => [p, 0]));
            for (const s of samples) if (s.status === 200 && filter(s)) out[servedPort(s.upstream)] = (out[servedPort(s.upstream)] ?? 0) + 1;
            return out;
        };
        const served = {
            beforeKill: count((s) => s.end < killAt),
            // Started after the kill and finished before the new process even existed.
            whileDown: count((s) => s.start >= killAt && s.end <= restartAt),
            afterRestart: count((s) => s.start >= readyAt),
        };
        const failureCounts = new Map<number | string, number>();
        for (const s of samples) if (s.status !== 200) failureCounts.set(s.status, (failureCounts.get(s.status) ?? 0) + 1);
        const failures = [...failureCounts].map(([status, n]) => ({ status, count: n }));
        const latencies = samples.map((s) => s.end - s.start).sort((a, b) => a - b);

        const problems: string[] = [];
        if (failures.length) problems.push(`client requests failed: ${failures.map((f) => `${f.count}× ${f.status}`).join(", ")}`);
        for (const p of ports) if (!served.beforeKill[p]) problems.push(`instance :${p} served nothing before the kill (is least_conn balancing?)`);
        const downTotal = Object.values(served.whileDown).reduce((a, b) => a + b, 0);
        if (served.whileDown[victim.port]) problems.push(`the killed instance :${victim.port} is credited with ${served.whileDown[victim.port]} responses while it was down`);
        if (downTotal === 0) problems.push("no request completed while the instance was down");
        for (const p of ports) if (p !== victim.port && !served.whileDown[p]) problems.push(`survivor :${p} served nothing while :${victim.port} was down`);
        if (!served.afterRestart[victim.port]) problems.push(`the restarted instance :${victim.port} took no traffic within ${maxDurationMs} ms`);
        if (sharedCacheHits === 0) problems.push("Redis is configured but another instance got no Redis cache hit for a text the first one embedded");

        return {
            instances: ports,
            victim: victim.port,
            redisUrl: cluster.redisUrl,
            concurrency,
            killAt,
            restartAt,
            readyAt,
            seconds,
            requests: samples.length,
            failures,
            retried: samples.filter((s) => s.upstream.includes(",")).length,
            sharedCacheHits,
            served,
            p50: percentile(latencies, 50),
            p99: percentile(latencies, 99),
            problems,
        };
    } finally {
        await cluster.stop();
    }
}

export function formatFailover(r: FailoverReport): string {
    const row = (name: string, counts: Record<number, number>) =>
        `  ${name.padEnd(15)} ${r.instances.map((p) => `:${p}${p === r.victim ? "*" : " "} ${String(counts[p] ?? 0).padStart(5)}`).join("   ")}`;
    return [
        `${r.instances.length} instances behind nginx${r.redisUrl ? `, Redis cache at ${r.redisUrl}` : ""}; ${r.concurrency} clients for ${r.seconds.toFixed(1)} s`,
        `killed :${r.victim} (*) at ${(r.killAt / 1000).toFixed(2)} s, restarted at ${(r.restartAt / 1000).toFixed(2)} s, healthy at ${(r.readyAt / 1000).toFixed(2)} s`,
        `requests ${r.requests}, failed ${r.failures.reduce((a, f) => a + f.count, 0)}, retried by nginx ${r.retried}, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms`,
        "responses (200) per instance, by when the request started:",
        row("before kill", r.served.beforeKill),
        row("while down", r.served.whileDown),
        row("after restart", r.served.afterRestart),
        ...(r.sharedCacheHits !== undefined ? [`shared Redis cache: a text embedded on :${r.instances[0]} was a Redis hit on :${r.instances[r.instances.length - 1]} (${r.sharedCacheHits} hit)`] : []),
        r.problems.length ? `FAIL\n${r.problems.map((p) => `  - ${p}`).join("\n")}` : "OK: no failed requests, survivors carried the load, the restarted instance serves again",
    ].join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
    const args = parseArgs({ instances: "3", concurrency: "8", duration: "6000" });
    // Instances on one machine share its cores: give each its share, or their thread pools fight.
    const threads = args.threads ?? String(Math.max(1, Math.floor(availableParallelism() / Number(args.instances))));
    const { ensureTestModel } = await import("../test/fixtures/testModels.js");
    const model = args.model ?? (await ensureTestModel("bert-tiny"));
    if (!findNginx()) {
        console.error("nginx is not installed (apt-get install nginx, or set NGINX=/path/to/nginx)");
        process.exit(2);
    }
    const report = await runFailover({
        model,
        instances: Number(args.instances),
        concurrency: Number(args.concurrency),
        durationMs: Number(args.duration),
        serveArgs: ["--model.threads", threads],
        log: (m) => console.log(m),
    });
    console.log(formatFailover(report));
    process.exit(report.problems.length ? 1 : 0);
}
