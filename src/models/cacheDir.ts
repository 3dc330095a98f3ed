import { homedir } from "node:os";
import path from "node:path";

/** Environment variable that overrides the model cache folder. */
export const CACHE_DIR_ENV = "EMBEDDING_SERVER_CACHE_DIR";

const APP = "embedding-server";

export interface CacheDirContext {
    /** Default: `process.env`. */
    env?: NodeJS.ProcessEnv;
    /** Default: `process.platform`. */
    platform?: NodeJS.Platform;
    /** Default: `os.homedir()`. */
    home?: string;
}

/**
 * The folder downloaded models live in, following each OS's convention for
 * re-creatable data (a cache, not config: deleting it only costs a re-download).
 *
 * - `EMBEDDING_SERVER_CACHE_DIR` if set (non-empty)
 * - macOS: `~/Library/Caches/embedding-server/models`
 * - Windows: `%LOCALAPPDATA%\embedding-server\models` (else `~\AppData\Local\…`)
 * - elsewhere: `$XDG_CACHE_HOME/embedding-server/models` (XDG only counts when absolute,
 *   per the spec) or `~/.cache/embedding-server/models`
 */
export function defaultCacheDir(ctx: CacheDirContext = {}): string {
    const env = ctx.env ?? process.env;
    const platform = ctx.platform ?? process.platform;
    const home = ctx.home ?? homedir();
    // Path semantics must follow the target platform, not the host, so this is testable anywhere.
    const p = platform === "win32" ? path.win32 : path.posix;

    const override = env[CACHE_DIR_ENV];
    if (override) return p.resolve(override);

    if (platform === "darwin") return p.join(home, "Library", "Caches", APP, "models");
    if (platform === "win32") {
        const local = env.LOCALAPPDATA || p.join(home, "AppData", "Local");
        return p.join(local, APP, "models");
    }
    const xdg = env.XDG_CACHE_HOME;
    const base = xdg && p.isAbsolute(xdg) ? xdg : p.join(home, ".cache");
    return p.join(base, APP, "models");
}

/** `explicit` (e.g. `--cache-dir`) wins, made absolute; otherwise {@link defaultCacheDir}. */
export function resolveCacheDir(explicit?: string, ctx: CacheDirContext = {}): string {
    if (explicit) return path.resolve(explicit);
    return defaultCacheDir(ctx);
}
