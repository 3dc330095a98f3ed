import { spawn } from "node:child_process";
import { existsSync, renameSync, rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";

/** Types llama-quantize accepts, by the names users see in GGUF file names. */
export const QUANT_TYPES = [
    "F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0",
    "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_NL", "IQ4_XS",
] as const;
export type QuantType = (typeof QUANT_TYPES)[number];

export class QuantizeError extends Error {
    override name = "QuantizeError";
}

export interface QuantizeOptions {
    type: QuantType;
    threads?: number;
    /** Called per tensor with (done, total). */
    onProgress?: (done: number, total: number) => void;
    /** Allows re-quantizing an already quantized input (quality suffers). */
    allowRequantize?: boolean;
}

/** llama.cpp's llama-quantize, built on demand from the same pinned source as the engine. */
export async function quantizeTool(): Promise<string> {
    const { buildLlamaTools, existingToolsBinDir } = (await import(new URL("../../scripts/build-llama-tools.mjs", import.meta.url).href)) as typeof import("../../scripts/build-llama-tools.mjs");
    const bin = existingToolsBinDir() ?? (await buildLlamaTools());
    const tool = join(bin, process.platform === "win32" ? "llama-quantize.exe" : "llama-quantize");
    if (!existsSync(tool)) throw new QuantizeError(`llama-quantize was not built in ${bin}`);
    return tool;
}

/** Quantizes a GGUF, writing to a temporary file first so a failure never leaves a partial output. */
export async function quantizeModel(input: string, output: string, options: QuantizeOptions): Promise<void> {
    if (!existsSync(input)) throw new QuantizeError(`input ${input} does not exist`);
    if (!QUANT_TYPES.includes(options.type)) throw new QuantizeError(`--type ${options.type} is not one of ${QUANT_TYPES.join(", ")}`);
    const tool = await quantizeTool();
    const tmp = `${output}.tmp-${process.pid}`;
    const args = [...(options.allowRequantize ? ["--allow-requantize"] : []), input, tmp, options.type, String(options.threads ?? availableParallelism())];
    const tail: string[] = [];
    const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(tool, args, { stdio: ["ignore", "pipe", "pipe"] });
        const onData = (chunk: Buffer) => {
            for (const line of chunk.toString("utf8").split("\n")) {
                if (!line.trim()) continue;
                tail.push(line);
                if (tail.length > 20) tail.shift();
                // Per-tensor lines look like "[  12/  29]  blk.3.attn_q.weight - ..."
                const m = /^\[\s*(\d+)\/\s*(\d+)\]/.exec(line.trim());
                if (m) options.onProgress?.(Number(m[1]), Number(m[2]));
            }
        };
        child.stdout.on("data", onData);
        child.stderr.on("data", onData);
        child.once("error", reject);
        child.once("exit", resolve);
    });
    if (code !== 0 || !existsSync(tmp)) {
        rmSync(tmp, { force: true });
        throw new QuantizeError(`llama-quantize failed (exit ${code}): ${tail.filter((l) => /error|failed|invalid/i.test(l)).slice(-3).join(" | ") || tail.slice(-3).join(" | ")}`);
    }
    renameSync(tmp, output);
}
