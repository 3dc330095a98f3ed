import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

export class ConvertError extends Error {
    override name = "ConvertError";
}

/** Python modules convert_hf_to_gguf.py imports (gguf itself comes from the source tree). */
const REQUIRED_MODULES = ["numpy", "torch", "transformers", "sentencepiece", "safetensors"];

export interface ConvertOptions {
    outfile: string;
    outtype?: "f32" | "f16" | "bf16" | "q8_0" | "auto";
    python?: string;
}

/** Which of the converter's Python modules are missing for this interpreter. */
export function missingPythonModules(python: string): string[] | "no-python" {
    const probe = spawnSync(python, ["-c", `import importlib.util,sys;print(",".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))`, ...REQUIRED_MODULES], { encoding: "utf8" });
    if (probe.error || probe.status !== 0) return "no-python";
    return probe.stdout.trim().split(",").filter(Boolean);
}

/** Runs llama.cpp's convert_hf_to_gguf.py from the pinned source on a Hugging Face model folder. */
export async function convertHfModel(modelDir: string, options: ConvertOptions, onLine?: (line: string) => void): Promise<void> {
    if (!existsSync(join(modelDir, "config.json"))) throw new ConvertError(`${modelDir} is not a Hugging Face model folder (no config.json)`);
    const python = options.python ?? process.env.PYTHON ?? "python3";
    const { ensureLlamaSource } = (await import(new URL("../../scripts/llama-source.mjs", import.meta.url).href)) as typeof import("../../scripts/llama-source.mjs");
    const src = ensureLlamaSource();
    const missing = missingPythonModules(python);
    if (missing === "no-python") throw new ConvertError(`convert needs Python 3: "${python}" did not run. Install Python 3 or set PYTHON=/path/to/python3`);
    if (missing.length) {
        throw new ConvertError(
            `convert needs the Python packages ${missing.join(", ")} (missing for ${python}). Install them with:\n` +
                `  ${python} -m pip install -r ${join(src, "requirements", "requirements-convert_hf_to_gguf.txt")}`,
        );
    }
    const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(python, [join(src, "convert_hf_to_gguf.py"), modelDir, "--outfile", options.outfile, "--outtype", options.outtype ?? "f16"], {
            stdio: ["ignore", "pipe", "pipe"],
        });
        for (const stream of [child.stdout, child.stderr]) stream.on("data", (c: Buffer) => c.toString("utf8").split("\n").filter(Boolean).forEach((l) => onLine?.(l)));
        child.once("error", reject);
        child.once("exit", resolve);
    });
    if (code !== 0) throw new ConvertError(`convert_hf_to_gguf.py failed with exit code ${code}`);
}
