import type { Argv, CommandModule } from "yargs";
import { ConvertError, convertHfModel } from "../../models/convert.js";
import { QUANT_TYPES, QuantizeError, quantizeModel, type QuantType } from "../../models/quantize.js";

interface QuantizeArgs {
    input: string;
    output: string;
    type: string;
    threads?: number;
    "allow-requantize"?: boolean;
}

function progressBar(done: number, total: number): string {
    const width = 30;
    const filled = Math.round((done / Math.max(total, 1)) * width);
    return `[${"=".repeat(filled)}${" ".repeat(width - filled)}] ${done}/${total} tensors`;
}

export const quantizeCommand: CommandModule<object, QuantizeArgs> = {
    command: "quantize <input> <output>",
    describe: "Quantize a GGUF with llama.cpp's llama-quantize (built on first use from the pinned source)",
    builder: (yargs: Argv) =>
        yargs
            .positional("input", { type: "string", demandOption: true, describe: "source GGUF (F32/F16 for best quality)" })
            .positional("output", { type: "string", demandOption: true, describe: "GGUF to write" })
            .option("type", { type: "string", demandOption: true, choices: QUANT_TYPES, describe: "target type" })
            .option("threads", { type: "number", describe: "threads (default: all cores)" })
            .option("allow-requantize", { type: "boolean", default: false, describe: "allow an already quantized input" }) as unknown as Argv<QuantizeArgs>,
    handler: async (argv) => {
        const tty = process.stderr.isTTY;
        let last = -1;
        try {
            await quantizeModel(argv.input, argv.output, {
                type: argv.type as QuantType,
                threads: argv.threads,
                allowRequantize: argv["allow-requantize"],
                onProgress: (done, total) => {
                    if (tty) process.stderr.write(`\r${progressBar(done, total)}`);
                    else if (Math.floor((done / total) * 10) !== last) {
                        last = Math.floor((done / total) * 10);
                        process.stderr.write(`${progressBar(done, total)}\n`);
                    }
                },
            });
            if (tty) process.stderr.write("\n");
            console.log(argv.output);
        } catch (err) {
            if (tty) process.stderr.write("\n");
            console.error(err instanceof QuantizeError ? err.message : `quantize failed: ${(err as Error).message}`);
            process.exit(1);
        }
    },
};

interface ConvertArgs {
    dir: string;
    outfile: string;
    outtype: "f32" | "f16" | "bf16" | "q8_0" | "auto";
}

export const convertCommand: CommandModule<object, ConvertArgs> = {
    command: "convert <dir>",
    describe: "Convert a Hugging Face model folder to GGUF with llama.cpp's convert_hf_to_gguf.py (needs Python with torch/transformers)",
    builder: (yargs: Argv) =>
        yargs
            .positional("dir", { type: "string", demandOption: true, describe: "folder with config.json and safetensors" })
            .option("outfile", { type: "string", demandOption: true, describe: "GGUF to write" })
            .option("outtype", { type: "string", default: "f16", choices: ["f32", "f16", "bf16", "q8_0", "auto"] }) as unknown as Argv<ConvertArgs>,
    handler: async (argv) => {
        try {
            await convertHfModel(argv.dir, { outfile: argv.outfile, outtype: argv.outtype }, (line) => process.stderr.write(`${line}\n`));
            console.log(argv.outfile);
        } catch (err) {
            console.error(err instanceof ConvertError ? err.message : `convert failed: ${(err as Error).message}`);
            process.exit(1);
        }
    },
};
