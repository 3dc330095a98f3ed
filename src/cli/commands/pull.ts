import { stat } from "node:fs/promises";
import type { Argv, CommandModule } from "yargs";
import { resolveModel } from "../../models/download.js";
import { ModelError } from "../../models/errors.js";
import { createProgressPrinter, formatBytes } from "../../models/progress.js";

export interface PullArgs {
    model: string;
    "cache-dir"?: string;
    token?: string;
    endpoint?: string;
    offline?: boolean;
    quiet?: boolean;
}

/**
 * `embedding-server pull <model>`: downloads (or verifies the cached copy of) a model and prints
 * the path llama.cpp should load on stdout, so `$(embedding-server pull …)` composes. Progress and
 * messages go to stderr. Ctrl-C keeps the partial download; running the command again resumes it.
 */
export async function runPull(argv: PullArgs): Promise<void> {
    const controller = new AbortController();
    const onSigint = () => {
        process.stderr.write("\ncancelling; the partial download is kept and the same command resumes it\n");
        controller.abort(new Error("interrupted"));
    };
    // once: a second Ctrl-C falls through to Node's default and exits at once.
    process.once("SIGINT", onSigint);
    const printer = createProgressPrinter({ stream: process.stderr });
    try {
        const result = await resolveModel(argv.model, {
            ...(argv["cache-dir"] ? { cacheDir: argv["cache-dir"] } : {}),
            ...(argv.endpoint ? { endpoint: argv.endpoint } : {}),
            ...(argv.token ? { token: argv.token } : {}),
            ...(argv.offline ? { offline: true } : {}),
            ...(argv.quiet ? {} : { onProgress: printer.onProgress }),
            signal: controller.signal,
        });
        printer.finish();
        if (!argv.quiet && result.spec.kind !== "local") {
            let bytes = 0;
            for (const f of result.files) bytes += (await stat(f)).size;
            const what = `${result.files.length} file${result.files.length > 1 ? "s" : ""}, ${formatBytes(bytes)}`;
            const how = result.downloaded ? "downloaded and verified" : result.fromCacheOnly ? "using the verified cached copy (hub not consulted)" : "already cached and verified";
            process.stderr.write(`${argv.model}: ${how} (${what})\n`);
        }
        process.stdout.write(`${result.path}\n`);
    } catch (err) {
        printer.finish();
        if (err instanceof ModelError) {
            // Ctrl-C already explained itself in onSigint.
            if (err.code === "MODEL_DOWNLOAD_ABORTED" && controller.signal.aborted) {
                process.exitCode = 130;
                return;
            }
            process.stderr.write(`error: ${err.message}\n`);
            process.exitCode = 1;
            return;
        }
        throw err;
    } finally {
        process.off("SIGINT", onSigint);
    }
}

const pullCommand: CommandModule<object, PullArgs> = {
    command: "pull <model>",
    describe: "Download a GGUF model into the cache (resumable, checksum-verified) and print its path",
    builder: (yargs: Argv<object>) =>
        yargs
            .positional("model", {
                type: "string",
                demandOption: true,
                describe: "hf:<user>/<repo>[:<quant>], hf:<user>/<repo>/<file>.gguf, an https URL to a .gguf, or a local path",
            })
            .option("cache-dir", {
                type: "string",
                describe: "Where models are stored (default: $EMBEDDING_SERVER_CACHE_DIR or the OS cache folder)",
            })
            .option("token", {
                type: "string",
                describe: "Hugging Face token for gated/private repos (default: $HF_TOKEN; prefer the variable, flags show up in ps and shell history)",
            })
            .option("endpoint", {
                type: "string",
                describe: "Hub base URL (default: $HF_ENDPOINT or https://huggingface.co)",
            })
            .option("offline", {
                type: "boolean",
                describe: "Only use verified cached files; never contact the hub (also: HF_HUB_OFFLINE=1)",
            })
            .option("quiet", {
                type: "boolean",
                alias: "q",
                describe: "No progress output",
            })
            .example("$0 pull hf:Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0", "best match for a quant tag")
            .example("$0 pull hf:user/repo/model-f16.gguf", "one named file"),
    handler: runPull,
};

export default pullCommand;
