import { existsSync, readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ConfigError } from "./loader.js";

export const PROFILE_NAMES = ["auto", "16gb", "32gb", "64gb"] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

export interface HardwareInfo {
    totalMemoryBytes: number;
    backend: "metal" | "cuda" | "cpu";
}

const profileFileSchema = z
    .object({
        description: z.string(),
        quantization: z.string().regex(/^[A-Za-z0-9_]+$/),
        model: z.record(z.string(), z.unknown()).default({}),
        limits: z.record(z.string(), z.unknown()).default({}),
    })
    .strict();

export interface Profile {
    name: Exclude<ProfileName, "auto">;
    description: string;
    /** Quantization tag for hf: model specs (Q4_0, Q8_0, F16). */
    quantization: string;
    /** Config layer (model.* tunings and limits) placed between the defaults and the config file. */
    layer: Record<string, unknown>;
    /** One line saying what was chosen and why. */
    explanation: string;
}

function onPath(command: string): boolean {
    return (process.env.PATH ?? "").split(delimiter).some((dir) => dir && existsSync(join(dir, command)));
}

/** Memory and GPU backend, from cheap checks only (no driver is loaded). */
export function detectHardware(): HardwareInfo {
    const backend = process.platform === "darwin" && process.arch === "arm64" ? "metal" : existsSync("/proc/driver/nvidia/version") || onPath("nvidia-smi") ? "cuda" : "cpu";
    return { totalMemoryBytes: totalmem(), backend };
}

const PROFILE_DIR = fileURLToPath(new URL("../../profiles/", import.meta.url));
const GiB = 2 ** 30;

/** Reads profiles/<name>.yaml (shipped in the package) and adapts it to the backend. */
export function loadProfile(requested: ProfileName, hardware: HardwareInfo = detectHardware()): Profile {
    const memGiB = hardware.totalMemoryBytes / GiB;
    // Leave headroom: a "16 GB" machine reports a little less than 16 GiB.
    const name = requested !== "auto" ? requested : memGiB >= 56 ? "64gb" : memGiB >= 28 ? "32gb" : "16gb";
    const path = join(PROFILE_DIR, `${name}.yaml`);
    const parsed = profileFileSchema.safeParse(parseYaml(readFileSync(path, "utf8")));
    if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`), path);
    const file = parsed.data;
    let quantization = file.quantization;
    const model: Record<string, unknown> = { ...file.model };
    if (hardware.backend === "cpu") {
        // On CPUs 8-bit weights beat F16 (less memory traffic, fast int8 dot products), and there is nothing to offload.
        if (quantization === "F16") quantization = "Q8_0";
        model.gpuLayers = 0;
    }
    const why = requested === "auto" ? `detected ${memGiB.toFixed(1)} GiB RAM and ${hardware.backend} backend` : `requested with --profile ${requested}`;
    return {
        name,
        description: file.description,
        quantization,
        layer: { model, limits: file.limits },
        explanation: `profile ${name} (${why}): ${quantization} weights, context ${model.contextSize}, batch ${model.batchSize}, ${model.maxSequences} sequences, gpuLayers ${model.gpuLayers}`,
    };
}

/** hf:user/repo:Q8_0 with another quantization tag; other specs are returned unchanged. */
export function withQuantization(spec: string, quantization: string): string {
    const m = /^(hf:[^/:]+\/[^/:]+):([A-Za-z0-9_]+)$/.exec(spec);
    return m ? `${m[1]}:${quantization}` : spec;
}
