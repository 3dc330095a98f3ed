import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { findNginx, formatFailover, NGINX_TEMPLATE, renderNginxSite, runFailover } from "../scripts/cluster.js";
import { loadConfig } from "../src/config/loader.js";
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

const DEPLOY = fileURLToPath(new URL("../deploy", import.meta.url));

// Loosely typed access to parsed manifests.
type Doc = any;

function yamlFiles(dir: string): string[] {
    return readdirSync(dir).flatMap((name) => {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) return yamlFiles(path);
        return /\.ya?ml$/.test(name) ? [path] : [];
    });
}

function parseFile(path: string): Doc[] {
    const docs = parseAllDocuments(readFileSync(path, "utf8"));
    for (const d of docs) assert.deepEqual(d.errors.map(String), [], `${relative(DEPLOY, path)} parses`);
    return docs.map((d) => d.toJS() as Doc);
}

/** Validates a config the way `serve --config` would (no environment, no flags). */
function checkConfig(text: string, name: string) {
    const dir = mkdtempSync(join(tmpdir(), "deploy-config-"));
    try {
        const file = join(dir, "config.yaml");
        writeFileSync(file, text);
        return loadConfig({ file, env: {}, flags: {} });
    } catch (err) {
        throw new Error(`${name}: ${(err as Error).message}`);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

describe("deploy manifests", () => {
    const files = yamlFiles(DEPLOY);
    const k8s = files.filter((f) => f.includes(`${join("deploy", "k8s")}`)).flatMap((f) => parseFile(f).map((doc) => ({ file: relative(DEPLOY, f), doc })));
    const byKind = (kind: string, name?: string) => k8s.filter((m) => m.doc?.kind === kind && (name === undefined || m.doc.metadata?.name === name)).map((m) => m.doc);

    it("every deploy/**/*.yaml parses", () => {
        assert.ok(files.length >= 10, `found ${files.map((f) => relative(DEPLOY, f))}`);
        for (const f of files) parseFile(f);
    });

    it("Kubernetes: the expected kinds, every manifest in the kustomization", () => {
        const kinds = k8s.map((m) => `${m.doc.kind}/${m.doc.metadata?.name ?? ""}`).sort();
        assert.deepEqual(kinds, [
            "ConfigMap/embedding-server-config",
            "Deployment/embedding-server",
            "Deployment/redis",
            "HorizontalPodAutoscaler/embedding-server",
            "Ingress/embedding-server",
            "Kustomization/",
            "PersistentVolumeClaim/embedding-server-models",
            "PodDisruptionBudget/embedding-server",
            "Service/embedding-server",
            "Service/redis",
        ]);
        const listed = (byKind("Kustomization")[0].resources as string[]).sort();
        const present = [...new Set(k8s.filter((m) => m.doc.kind !== "Kustomization").map((m) => m.file.replace(/^k8s\//, "")))].sort();
        assert.deepEqual(listed, present);
    });

    it("Kubernetes: probes on /health, preStop sleep, grace period above preStop + drain, resources, API keys from a Secret", () => {
        const [deployment] = byKind("Deployment", "embedding-server");
        const pod = deployment.spec.template.spec;
        const [container] = pod.containers;
        const portName = container.ports[0].name;
        for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
            assert.equal(container[probe]?.httpGet?.path, "/health", `${probe} on /health`);
            assert.equal(container[probe].httpGet.port, portName);
        }
        const sleep = container.lifecycle.preStop.exec.command as string[];
        assert.equal(sleep[0], "sleep");
        const preStopSeconds = Number(sleep[1]);
        assert.ok(preStopSeconds >= 5);

        const [configMap] = byKind("ConfigMap", "embedding-server-config");
        const mountPath = container.volumeMounts.find((v: Doc) => pod.volumes.find((pv: Doc) => pv.name === v.name)?.configMap?.name === "embedding-server-config").mountPath;
        const configEnv = container.env.find((e: Doc) => e.name === "EMBEDDING_SERVER_CONFIG").value as string;
        const configKey = configEnv.slice(mountPath.length + 1);
        const config = checkConfig(configMap.data[configKey], `ConfigMap ${configKey}`);
        assert.equal(config.server.host, "0.0.0.0");
        assert.equal(config.server.trustProxy, true);
        assert.equal(String(config.server.port), String(container.ports[0].containerPort));
        assert.ok(pod.terminationGracePeriodSeconds * 1000 > preStopSeconds * 1000 + config.server.drainTimeoutMs, "grace period covers preStop and the drain");
        assert.equal(String(config.models[0]!.threads), String(container.resources.requests.cpu), "model.threads matches the CPU request");

        for (const k of ["requests", "limits"]) assert.ok(container.resources[k].cpu && container.resources[k].memory, `resources.${k}`);
        const keys = container.env.find((e: Doc) => e.name === "EMBEDDING_SERVER_API_KEYS");
        assert.equal(keys.valueFrom.secretKeyRef.name, "embedding-server-keys");

        const labels = deployment.spec.template.metadata.labels;
        for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels)) assert.equal(labels[k], v);
        const [service] = byKind("Service", "embedding-server");
        for (const [k, v] of Object.entries(service.spec.selector)) assert.equal(labels[k], v, "the Service selects the pods");
        assert.equal(service.spec.ports[0].targetPort, portName);

        const [hpa] = byKind("HorizontalPodAutoscaler");
        assert.equal(hpa.spec.scaleTargetRef.name, "embedding-server");
        assert.equal(hpa.spec.metrics[0].resource.name, "cpu");

        const [redis] = byKind("Deployment", "redis");
        const [redisService] = byKind("Service", "redis");
        assert.equal(redisService.spec.selector["app.kubernetes.io/name"], redis.spec.template.metadata.labels["app.kubernetes.io/name"]);
        const redisUrl = new URL(config.redis.url ?? "missing:");
        assert.equal(redisUrl.hostname, redisService.metadata.name, "redis.url names the Redis Service");
        assert.equal(redisUrl.port, String(redisService.spec.ports[0].port));
    });

    it("compose: three instances with the names nginx's upstream uses, nginx with the shipped config, Redis, a valid instance config", () => {
        const [compose] = parseFile(join(DEPLOY, "docker-compose.yml"));
        const upstreams = [...readFileSync(NGINX_TEMPLATE, "utf8").matchAll(/^\s*server (\S+):(\d+) /gm)].map((m) => [m[1], m[2]]);
        assert.equal(upstreams.length, 3);
        const config = checkConfig(readFileSync(join(DEPLOY, "config", "embedding-server.yaml"), "utf8"), "deploy/config/embedding-server.yaml");
        for (const [host, port] of upstreams) {
            const service = compose.services[host!];
            assert.ok(service, `compose has a service ${host}`);
            assert.equal(String(config.server.port), port);
            assert.ok(service.volumes.some((v: string) => v.startsWith("./config/embedding-server.yaml:")));
            assert.match(service.stop_grace_period, /^(\d+)s$/);
            assert.ok(Number(service.stop_grace_period.slice(0, -1)) * 1000 > config.server.drainTimeoutMs);
        }
        assert.equal(config.server.trustProxy, true);
        const redisUrl = new URL(config.redis.url ?? "missing:");
        assert.ok(compose.services[redisUrl.hostname], "redis.url names the compose Redis service");
        assert.ok(compose.services.nginx.volumes.includes("./nginx/embedding-server.conf:/etc/nginx/conf.d/default.conf:ro"));
        assert.ok(compose.services.redis);
    });

    it("nginx: retries POSTs (non_idempotent) only on the embedding routes; body limit equals server.bodyLimit", () => {
        const conf = readFileSync(NGINX_TEMPLATE, "utf8").replace(/#.*$/gm, "");
        const nonIdempotent = [...conf.matchAll(/location ([^{]+)\{([^}]*)\}/g)].filter((m) => /non_idempotent/.test(m[2]!)).map((m) => m[1]!.trim());
        assert.deepEqual(nonIdempotent, ["~ ^/(v1/embeddings|embeddings|embed|embed/batch|similarity)$"]);
        const size = /client_max_body_size (\d+)m;/.exec(conf);
        const defaults = checkConfig("model:\n  path: x.gguf\n", "defaults");
        assert.equal(Number(size?.[1]) * 1024 * 1024, defaults.server.bodyLimit);
        for (const directive of ["least_conn;", "keepalive 32;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";', "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"]) {
            assert.ok(conf.includes(directive), directive);
        }
    });
});
