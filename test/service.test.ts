import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { buildPlist, EXIT_TIMEOUT_SECONDS, SERVICE_LABEL } from "../src/cli/commands/service.js";
import { BIN } from "./helpers/spawnServer.js";

type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };

/**
 * A strict reader for the XML property-list subset launchd uses: checks that every tag is closed
 * in order and that only plist elements appear, and returns the value. Throws on anything else.
 */
function parsePlist(text: string): PlistValue {
    const body = text
        .replace(/^<\?xml version="1\.0" encoding="UTF-8"\?>\s*/, "")
        .replace(/^<!DOCTYPE plist PUBLIC "-\/\/Apple\/\/DTD PLIST 1\.0\/\/EN" "http:\/\/www\.apple\.com\/DTDs\/PropertyList-1\.0\.dtd">\s*/, "")
        .replace(/<!--[\s\S]*?-->/g, "");
    const tokens = body.match(/<[^>]+>|[^<]+/g) ?? [];
    let i = 0;
    const skipSpace = () => {
        while (i < tokens.length && /^\s+$/.test(tokens[i]!)) i++;
    };
    const unescape = (s: string) => {
        assert.ok(!/&(?!(amp|lt|gt|quot|apos);)/.test(s), `bare & in ${s}`);
        return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, "&");
    };
    const textOf = (tag: string): string => {
        let out = "";
        while (tokens[i] !== `</${tag}>`) {
            const t = tokens[i++];
            assert.ok(t !== undefined && !t.startsWith("<"), `unexpected ${t} inside <${tag}>`);
            out += t;
        }
        i++;
        return unescape(out);
    };
    const value = (): PlistValue => {
        skipSpace();
        const open = tokens[i++];
        switch (open) {
            case "<true/>":
                return true;
            case "<false/>":
                return false;
            case "<string>":
                return textOf("string");
            case "<integer>": {
                const t = textOf("integer");
                assert.match(t, /^-?\d+$/);
                return Number(t);
            }
            case "<array>": {
                const items: PlistValue[] = [];
                for (skipSpace(); tokens[i] !== "</array>"; skipSpace()) items.push(value());
                i++;
                return items;
            }
            case "<dict>": {
                const dict: Record<string, PlistValue> = {};
                for (skipSpace(); tokens[i] !== "</dict>"; skipSpace()) {
                    assert.equal(tokens[i++], "<key>", "a dict holds key/value pairs");
                    const key = textOf("key");
                    assert.ok(!(key in dict), `duplicate key ${key}`);
                    dict[key] = value();
                }
                i++;
                return dict;
            }
            default:
                throw new Error(`unexpected token ${open}`);
        }
    };
    skipSpace();
    assert.equal(tokens[i++], '<plist version="1.0">');
    const root = value();
    skipSpace();
    assert.equal(tokens[i++], "</plist>");
    skipSpace();
    assert.equal(i, tokens.length, "nothing after </plist>");
    return root;
}

/** Python's plistlib, when python3 is installed: an independent strict XML plist parser. */
function parseWithPython(text: string): unknown {
    const r = spawnSync("python3", ["-c", "import json, plistlib, sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))"], { input: text, encoding: "utf8" });
    if (r.error) return undefined;
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
}

describe("service (launchd)", () => {
    const dir = mkdtempSync(join(tmpdir(), "service-test-"));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const home = join(dir, "home");
    const cli = (args: string[], cwd = dir) =>
        spawnSync(process.execPath, [BIN, "service", ...args], { cwd, encoding: "utf8", env: { ...process.env, HOME: home, EMBEDDING_SERVER_CACHE_DIR: "/models cache" } });

    it("service print: a valid plist with the label, absolute node + bin + config + model, RunAtLoad, KeepAlive and log paths", () => {
        writeFileSync(join(dir, "server.yaml"), "server:\n  port: 8080\n");
        const r = cli(["print", "--config", "server.yaml", "--model", "models/bge.gguf", "--port", "9090"]);
        assert.equal(r.status, 0, r.stderr);
        const plist = parsePlist(r.stdout) as Record<string, PlistValue>;
        const realDir = realpathSync(dir);
        assert.equal(plist.Label, SERVICE_LABEL);
        assert.deepEqual(plist.ProgramArguments, [
            process.execPath,
            realpathSync(BIN),
            "serve",
            "--config",
            join(realDir, "server.yaml"),
            "--model",
            join(realDir, "models/bge.gguf"),
            "--port",
            "9090",
        ]);
        assert.equal(plist.RunAtLoad, true);
        assert.equal(plist.KeepAlive, true);
        assert.equal(plist.ExitTimeOut, EXIT_TIMEOUT_SECONDS);
        assert.ok(EXIT_TIMEOUT_SECONDS > 30, "above the default drain timeout");
        assert.equal(plist.WorkingDirectory, realDir);
        assert.equal(plist.StandardOutPath, join(home, "Library/Logs/embedding-server/embedding-server.log"));
        assert.equal(plist.StandardErrorPath, join(home, "Library/Logs/embedding-server/embedding-server.err.log"));
        const env = plist.EnvironmentVariables as Record<string, string>;
        assert.equal(env.EMBEDDING_SERVER_CACHE_DIR, "/models cache");
        assert.ok(env.PATH?.split(":").includes("/usr/bin"));
        const python = parseWithPython(r.stdout);
        if (python !== undefined) assert.deepEqual(python, plist);
    });

    it("hf: specs stay as given; XML special characters are escaped", () => {
        const r = cli(["print", "--model", "hf:Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0"]);
        assert.equal(r.status, 0, r.stderr);
        const args = (parsePlist(r.stdout) as Record<string, PlistValue>).ProgramArguments as string[];
        assert.deepEqual(args.slice(2), ["serve", "--model", "hf:Qwen/Qwen3-Embedding-0.6B-GGUF:Q8_0"]);

        const text = buildPlist({ nodePath: "/n", binPath: "/b", serveArgs: ["--model", "/m/a&b <c>.gguf"], workingDirectory: "/w", home: "/h", env: { A: `"q" 'x'` } });
        const plist = parsePlist(text) as Record<string, PlistValue>;
        assert.deepEqual(plist.ProgramArguments, ["/n", "/b", "serve", "--model", "/m/a&b <c>.gguf"]);
        assert.deepEqual(plist.EnvironmentVariables, { A: `"q" 'x'` });
        const python = parseWithPython(text);
        if (python !== undefined) assert.deepEqual(python, plist);
    });

    it("a missing config file is an error that names it", () => {
        const r = cli(["print", "--config", "nope.yaml"]);
        assert.equal(r.status, 2);
        assert.match(r.stderr, /nope\.yaml does not exist/);
        assert.equal(r.stdout, "");
    });

    it("install and uninstall explain that they are macOS-only elsewhere", { skip: process.platform === "darwin" ? "this is macOS: install would load a real agent" : false }, () => {
        for (const action of ["install", "uninstall"]) {
            const r = cli([action]);
            assert.equal(r.status, 1);
            assert.match(r.stderr, /only on macOS/);
            assert.match(r.stderr, /service print/);
        }
    });

    it("an unknown action is refused", () => {
        const r = cli(["start"]);
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /Choices: "install", "uninstall", "print"/);
    });
});
