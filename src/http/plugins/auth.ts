import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ForbiddenError, UnauthorizedError } from "../../core/errors.js";

/** Who may call a route: nobody needs a key, any API key, an admin key, or the metrics rule. */
export type RouteAccess = "public" | "api" | "admin" | "metrics";

declare module "fastify" {
    interface FastifyContextConfig {
        access?: RouteAccess;
    }
    interface FastifyRequest {
        /** Short, non-reversible id of the caller's key, for logs and rate limits. */
        keyId?: string;
    }
}

const digest = (key: string) => createHash("sha256").update(key, "utf8").digest();

/** A short hash that identifies a key in logs without revealing it. */
export function keyId(key: string): string {
    return digest(key).toString("hex").slice(0, 12);
}

function presentedKey(request: FastifyRequest): string | undefined {
    const auth = request.headers.authorization;
    if (typeof auth === "string") {
        const match = /^Bearer\s+(.+)$/i.exec(auth.trim());
        if (match) return match[1]!.trim();
    }
    const header = request.headers["x-api-key"];
    return typeof header === "string" && header.length > 0 ? header.trim() : undefined;
}

/** Compares against every key in constant time, so timing reveals neither which key nor how much matched. */
function matches(candidate: Buffer, keys: readonly Buffer[]): boolean {
    let found = false;
    for (const key of keys) found = timingSafeEqual(candidate, key) || found;
    return found;
}

export interface AuthOptions {
    apiKeys: readonly string[];
    adminKeys: readonly string[];
    metricsPublic: boolean;
}

export function registerAuth(app: FastifyInstance, options: AuthOptions) {
    const apiDigests = options.apiKeys.map(digest);
    const adminDigests = options.adminKeys.map(digest);
    app.addHook("onRequest", async (request) => {
        const access = request.routeOptions.config?.access ?? "api";
        if (access === "public" || (access === "metrics" && options.metricsPublic)) return;
        const needAdmin = access === "admin";
        // With no keys configured the server is open (it listens on loopback by default),
        // except admin routes, which stay closed until an admin key exists.
        if (!needAdmin && apiDigests.length === 0) return;
        const key = presentedKey(request);
        if (!key) {
            throw new UnauthorizedError("missing API key: send Authorization: Bearer <key> or x-api-key: <key>");
        }
        const candidate = digest(key);
        if (needAdmin) {
            if (adminDigests.length === 0) throw new ForbiddenError("admin routes are disabled: configure auth.adminKeys");
            if (!matches(candidate, adminDigests)) throw new UnauthorizedError("invalid admin key");
        } else if (!matches(candidate, apiDigests) && !matches(candidate, adminDigests)) {
            throw new UnauthorizedError("invalid API key");
        }
        request.keyId = keyId(key);
    });
}
