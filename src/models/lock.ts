import { readFileSync } from "node:fs";
import { open, readFile, stat, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { CacheBusyError, DownloadAbortedError } from "./errors.js";
import { sleep } from "./hubClient.js";

interface LockOwner {
    pid: number;
    host: string;
    since: string;
    /** When the owning process started (Linux: clock ticks since boot), so a reused pid is told apart. */
    started?: string;
}

/**
 * A process's start time from /proc (Linux). A container restarted in the same pod gets the same
 * hostname and often the same pid, so pid + host alone would make a dead owner look alive.
 */
function processStart(pid: number | "self"): string | undefined {
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        // Fields after the parenthesised command name; starttime is field 22 overall.
        return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    } catch {
        return undefined;
    }
}

// A lock whose owner we cannot check (another host sharing the cache, or garbage) is
// only presumed dead after this long without its file changing.
const FOREIGN_STALE_MS = 24 * 3600_000;
const POLL_MS = 500;

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (err) {
        // EPERM: the process exists but belongs to someone else.
        return (err as NodeJS.ErrnoException).code === "EPERM";
    }
}

async function isStale(lockPath: string): Promise<boolean> {
    let owner: Partial<LockOwner> | undefined;
    try {
        owner = JSON.parse(await readFile(lockPath, "utf8")) as Partial<LockOwner>;
    } catch {
        owner = undefined;
    }
    if (owner && owner.host === hostname() && typeof owner.pid === "number") {
        if (!alive(owner.pid)) return true;
        const started = processStart(owner.pid);
        return owner.started !== undefined && started !== undefined && started !== owner.started;
    }
    try {
        const st = await stat(lockPath);
        // An unreadable lock may be one being written this instant: give it a moment.
        return Date.now() - st.mtimeMs > (owner ? FOREIGN_STALE_MS : 10_000);
    } catch {
        return true;
    }
}

/**
 * Takes `<lockPath>` (O_EXCL create) so two processes never append to the same `.partial` file.
 * A lock left by a dead process on this host is taken over. While another live process holds it,
 * waits (calling `onWait` once) up to `waitMs`.
 * @returns the release function.
 */
export async function acquireLock(
    lockPath: string,
    opts: { waitMs: number; signal?: AbortSignal; spec: string; onWait?: (pid: number | undefined) => void },
): Promise<() => Promise<void>> {
    const deadline = Date.now() + opts.waitMs;
    let told = false;
    for (;;) {
        try {
            const fh = await open(lockPath, "wx");
            const owner: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString(), started: processStart("self") };
            await fh.writeFile(JSON.stringify(owner));
            await fh.close();
            let released = false;
            return async () => {
                if (released) return;
                released = true;
                await unlink(lockPath).catch(() => undefined);
            };
        } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        }
        if (await isStale(lockPath)) {
            await unlink(lockPath).catch(() => undefined);
            continue;
        }
        if (!told) {
            told = true;
            let pid: number | undefined;
            try {
                pid = (JSON.parse(await readFile(lockPath, "utf8")) as LockOwner).pid;
            } catch {
                pid = undefined;
            }
            opts.onWait?.(pid);
        }
        if (Date.now() >= deadline) {
            throw new CacheBusyError(`${opts.spec}: another process is downloading into ${lockPath.replace(/\.lock$/, "")}; gave up waiting`);
        }
        try {
            await sleep(POLL_MS, opts.signal);
        } catch {
            throw new DownloadAbortedError(`${opts.spec}: cancelled`, { cause: opts.signal?.reason });
        }
    }
}
