/** What `resolveModel` reports while it works. All byte counts cover every file of the model. */
export interface DownloadProgress {
    /** "download": bytes arriving; "verify": hashing a finished file; "wait": another process holds the file's lock. */
    phase: "download" | "verify" | "wait";
    /** The model spec being resolved, as given. */
    model: string;
    /** File being worked on, relative to its repo (or the URL's file name). */
    file: string;
    /** 1-based index of `file` among the model's files (split GGUFs have several). */
    fileIndex: number;
    fileCount: number;
    /** Bytes of `file` done in this phase. */
    fileBytes: number;
    /** Size of `file`, 0 when unknown. */
    fileTotalBytes: number;
    /** Bytes done across all files (files already cached count as done). */
    bytes: number;
    /** Total across all files, 0 when unknown. */
    totalBytes: number;
    /** Recent rate of this phase, bytes per second (0 until measurable). */
    bytesPerSecond: number;
    /** Seconds left for the whole model at the recent rate, undefined when unknown. */
    etaSeconds: number | undefined;
}

/**
 * Rate over a sliding window, so a resumed download's already-present bytes and an early burst
 * don't distort speed and ETA.
 */
export class SpeedMeter {
    private samples: { t: number; bytes: number }[] = [];

    constructor(private readonly windowMs = 5_000, private readonly now: () => number = () => performance.now()) {}

    /** Records the cumulative byte count and returns the current bytes/second. */
    update(bytes: number): number {
        const t = this.now();
        this.samples.push({ t, bytes });
        while (this.samples.length > 2 && (this.samples[1]?.t ?? t) < t - this.windowMs) this.samples.shift();
        const first = this.samples[0];
        if (!first || t - first.t < 200) return 0;
        return Math.max(0, ((bytes - first.bytes) * 1000) / (t - first.t));
    }

    reset(): void {
        this.samples = [];
    }
}

/** 1234567 -> "1.2 MB" (decimal units, as the hub shows sizes). */
export function formatBytes(n: number): string {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let v = n;
    let i = 0;
    while (v >= 1000 && i < units.length - 1) {
        v /= 1000;
        i++;
    }
    return `${i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** 83 -> "1m23s", 3725 -> "1h02m". */
export function formatDuration(seconds: number | undefined): string {
    if (seconds === undefined || !Number.isFinite(seconds)) return "--";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
    return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export interface ProgressPrinterOptions {
    /** Default: `process.stderr`, so stdout stays clean for the resulting path. */
    stream?: NodeJS.WriteStream;
    /** Redraw one line in place. Default: `stream.isTTY`. */
    tty?: boolean;
    /** Seconds between plain lines when not a TTY. Default 5. */
    intervalSeconds?: number;
}

export interface ProgressPrinter {
    onProgress: (p: DownloadProgress) => void;
    /** Ends the in-place line so later output starts on a fresh line. */
    finish: () => void;
}

/**
 * Human progress output: a redrawn bar with bytes, speed and ETA on a terminal; plain lines every
 * few seconds (and at each file/phase change) otherwise, so CI logs and journald stay readable.
 */
export function createProgressPrinter(opts: ProgressPrinterOptions = {}): ProgressPrinter {
    const stream = opts.stream ?? process.stderr;
    const tty = opts.tty ?? Boolean(stream.isTTY);
    const intervalMs = (opts.intervalSeconds ?? 5) * 1000;
    let lastDraw = 0;
    let lastKey = "";
    let printedDone = "";
    let drawn = false;

    const describe = (p: DownloadProgress) => {
        const which = p.fileCount > 1 ? ` (${p.fileIndex}/${p.fileCount})` : "";
        const verb = p.phase === "verify" ? "verifying" : p.phase === "wait" ? "waiting for another process downloading" : "downloading";
        return `${verb} ${p.file}${which}`;
    };

    const onProgress = (p: DownloadProgress) => {
        const now = Date.now();
        const key = `${p.phase}:${p.fileIndex}`;
        const changed = key !== lastKey;
        const fileDone = p.fileTotalBytes > 0 && p.fileBytes >= p.fileTotalBytes;
        if (tty) {
            if (!changed && !fileDone && now - lastDraw < 100) return;
            lastDraw = now;
            lastKey = key;
            const [done, total] = p.phase === "verify" ? [p.fileBytes, p.fileTotalBytes] : [p.bytes, p.totalBytes];
            const pct = total > 0 ? Math.min(1, done / total) : 0;
            const rate = p.bytesPerSecond > 0 ? `${formatBytes(p.bytesPerSecond)}/s` : "--/s";
            // Hashing is usually too quick to measure; "--/s ETA --" there would only be noise.
            const timing = p.phase === "verify" && p.bytesPerSecond === 0 ? "" : ` ${rate} ETA ${formatDuration(p.etaSeconds)}`;
            const tail = `${(pct * 100).toFixed(0).padStart(3)}% ${formatBytes(done)}/${total > 0 ? formatBytes(total) : "?"}${timing}`;
            const head = describe(p);
            const cols = stream.columns || 80;
            const barWidth = Math.max(0, Math.min(30, cols - head.length - tail.length - 5));
            const filled = Math.round(barWidth * pct);
            const bar = barWidth >= 5 ? ` [${"#".repeat(filled)}${"-".repeat(barWidth - filled)}]` : "";
            let line = `${head}${bar} ${tail}`;
            if (line.length > cols - 1) line = line.slice(0, cols - 1);
            stream.write(`\r\x1b[2K${line}`);
            drawn = true;
            return;
        }
        if (fileDone && printedDone === key) return;
        if (!changed && !fileDone && now - lastDraw < intervalMs) return;
        lastDraw = now;
        lastKey = key;
        if (fileDone) printedDone = key;
        if (p.phase === "wait") {
            stream.write(`${describe(p)}\n`);
            return;
        }
        const total = p.phase === "verify" ? p.fileTotalBytes : p.totalBytes;
        const done = p.phase === "verify" ? p.fileBytes : p.bytes;
        const pct = total > 0 ? ` ${((100 * done) / total).toFixed(0)}%` : "";
        const rate = p.bytesPerSecond > 0 ? ` at ${formatBytes(p.bytesPerSecond)}/s` : "";
        const eta = p.etaSeconds !== undefined && p.phase === "download" && !fileDone ? `, ETA ${formatDuration(p.etaSeconds)}` : "";
        stream.write(`${describe(p)}:${pct} ${formatBytes(done)}${total > 0 ? `/${formatBytes(total)}` : ""}${rate}${eta}\n`);
    };

    return {
        onProgress,
        finish: () => {
            if (tty && drawn) stream.write("\n");
            drawn = false;
        },
    };
}
