import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { VERSION } from "../version.js";
import { inspectCommand } from "./commands/inspect.js";
import pullCommand from "./commands/pull.js";
import { convertCommand, quantizeCommand } from "./commands/quantize.js";
import { serveCommand } from "./commands/serve.js";

await yargs(hideBin(process.argv))
    .scriptName("embedding-server")
    .parserConfiguration({ "dot-notation": false })
    .command(serveCommand)
    .command(pullCommand)
    .command(inspectCommand)
    .command(quantizeCommand)
    .command(convertCommand)
    .command((await import("./commands/service.js")).serviceCommand)
    .demandCommand(1, "Name a command: serve, pull, inspect, quantize, convert")
    .strict()
    .version(VERSION)
    .help()
    .alias("h", "help")
    .alias("v", "version")
    .wrap(Math.min(120, process.stdout.columns ?? 100))
    .parseAsync();
