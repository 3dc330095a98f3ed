import type { Argv, CommandModule } from "yargs";
import { resolveModel } from "../../models/download.js";
import { ModelError } from "../../models/errors.js";
import { inspectModel } from "../../models/inspect.js";
import { formatGiB } from "../../models/memoryEstimate.js";
import { createProgressPrinter, formatBytes } from "../../models/progress.js";

interface InspectArgs {
    model: string;
    context?: number;
    batch?: number;
    sequences?: number;
    json?: boolean;
}

const number = (n: number | undefined) => (n === undefined ? "unknown" : n.toLocaleString("en-US"));

export const inspectCommand: CommandModule<object, InspectArgs> = {
    command: "inspect <model>",
    describe: "Describe a GGUF (local file or hf:user/repo[:quant]): architecture, dimensions, pooling, quantization, tokenizer, memory",
    builder: (yargs: Argv) =>
        yargs
            .positional("model", { type: "string", demandOption: true, describe: "model.gguf, hf:user/repo[:quant] or https URL (pulled into the cache)" })
            .option("context", { type: "number", describe: "context (tokens per input) for the memory estimate; default min(training context, 8192)" })
            .option("batch", { type: "number", default: 2048, describe: "batch size in tokens for the memory estimate" })
            .option("sequences", { type: "number", default: 16, describe: "sequences per batch for the memory estimate" })
            .option("json", { type: "boolean", default: false, describe: "print JSON" }) as unknown as Argv<InspectArgs>,
    handler: async (argv) => {
        try {
            const printer = process.stderr.isTTY ? createProgressPrinter({ stream: process.stderr }) : undefined;
            const { path } = await resolveModel(argv.model, { onProgress: printer?.onProgress });
            printer?.finish();
            const i = await inspectModel(path, { contextSize: argv.context, batchSize: argv.batch, sequences: argv.sequences });
            if (argv.json) {
                console.log(JSON.stringify(i, null, 2));
                return;
            }
            const rows: [string, string][] = [
                ["file", `${i.path} (${formatBytes(i.fileSizeBytes)})`],
                ["name", i.name ?? "-"],
                ["architecture", `${i.architecture} (${i.causal ? "decoder, causal attention" : "encoder, bidirectional attention"})`],
                ["dimensions", number(i.dimensions)],
                ["pooling", i.pooling],
                ["context", `${number(i.trainContextLength)} tokens (training)`],
                ["layers", number(i.layers)],
                ["quantization", i.quantization],
                ["parameters", `${number(i.parameters)} (${(i.parameters / 1e6).toFixed(1)}M)`],
                ["tokenizer", `${i.tokenizer.model ?? "?"}${i.tokenizer.pre ? ` / ${i.tokenizer.pre}` : ""}, ${number(i.tokenizer.vocabSize)} tokens`],
                [
                    "memory",
                    `${formatGiB(i.memory.totalBytes)} (weights ${formatGiB(i.memory.modelBytes)} + context ${formatGiB(i.memory.contextBytes)}) at context ${i.memory.contextSize}, batch ${i.memory.batchSize}, ${i.memory.sequences} sequences`,
                ],
            ];
            const width = Math.max(...rows.map(([k]) => k.length));
            for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
        } catch (err) {
            console.error(err instanceof ModelError ? err.message : `cannot inspect ${argv.model}: ${(err as Error).message}`);
            process.exit(1);
        }
    },
};
