import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { VERSION } from "../version.js";
import { serveCommand } from "./commands/serve.js";

await yargs(hideBin(process.argv))
    .scriptName("embedding-server")
    .parserConfiguration({ "dot-notation": false })
    .command(serveCommand)
    .demandCommand(1, "Name a command: serve")
    .strict()
    .version(VERSION)
    .help()
    .alias("h", "help")
    .alias("v", "version")
    .wrap(Math.min(120, process.stdout.columns ?? 100))
    .parseAsync();
