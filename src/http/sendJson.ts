import type { FastifyReply } from "fastify";

/**
 * Sends a body already serialized as JSON. Fastify passes strings through untouched, so
 * responses built with toJsonArray skip a second serialization. Their shapes are the
 * routes' response schemas (test/http/docs.test.ts parses each with its schema).
 */
export function sendJson(reply: FastifyReply, json: string): FastifyReply {
    return reply.type("application/json; charset=utf-8").send(json);
}
