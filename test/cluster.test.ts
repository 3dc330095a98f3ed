import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { findNginx, formatFailover, NGINX_TEMPLATE, renderNginxSite, runFailover } from "../scripts/cluster.js";
import { ensureTestModel } from "./fixtures/testModels.js";

const nginx = findNginx();

describe("cluster behind nginx", () => {
    it("the generated nginx site differs from deploy/nginx only in the upstream and listen addresses", () => {
        const template = readFileSync(NGINX_TEMPLATE, "utf8");
        const site = renderNginxSite(template, { upstreams: ["127.0.0.1:1001", "127.0.0.1:1002"], listen: "127.0.0.1:2000" });
        const changed = (text: string) => text.split("\n").filter((l) => /^\s*(server \S+:\d+|listen)\b/.test(l));
        assert.deepEqual(changed(template), [
            "    server embedding-1:8080 max_fails=3 fail_timeout=5s;",
            "    server embedding-2:8080 max_fails=3 fail_timeout=5s;",
            "    server embedding-3:8080 max_fails=3 fail_timeout=5s;",
            "    listen 80;",
        ]);
        assert.deepEqual(changed(site), [
            "    server 127.0.0.1:1001 max_fails=3 fail_timeout=5s;",
            "    server 127.0.0.1:1002 max_fails=3 fail_timeout=5s;",
            "    listen 127.0.0.1:2000;",
        ]);
        const rest = (text: string) => text.split("\n").filter((l) => !/^\s*(server \S+:\d+|listen)\b/.test(l));
        assert.deepEqual(rest(site), rest(template));
    });

    it(
        "SIGKILL of one of 3 instances under load: no client request fails, survivors serve, the restarted instance rejoins",
        { skip: nginx ? false : "nginx is not installed (apt-get install nginx, or set NGINX=/path/to/nginx)", timeout: 60_000 },
        async () => {
            const model = await ensureTestModel("bert-tiny");
            // Three instances share two cores here: one thread each, or their thread pools fight.
            const report = await runFailover({ model, instances: 3, concurrency: 8, durationMs: 6000, maxDurationMs: 20_000, serveArgs: ["--model.threads", "1"] });
            const summary = formatFailover(report);
            console.log(summary);
            assert.deepEqual(report.problems, [], summary);
            assert.deepEqual(report.failures, []);
            assert.ok(report.requests > 100, `only ${report.requests} requests in ${report.seconds} s`);
            const victimWhileDown = report.served.whileDown[report.victim] ?? 0;
            assert.equal(victimWhileDown, 0);
            assert.ok((report.served.afterRestart[report.victim] ?? 0) > 0);
        },
    );
});
