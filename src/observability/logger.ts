import { pino, type Logger } from "pino";

/** Paths whose values never reach a log line. */
export const REDACTED_PATHS = [
    "req.headers.authorization",
    'req.headers["x-api-key"]',
    "headers.authorization",
    'headers["x-api-key"]',
    "config.auth.apiKeys",
    "config.auth.adminKeys",
    "auth.apiKeys",
    "auth.adminKeys",
    "apiKeys",
    "adminKeys",
    "token",
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
    return pino(
        {
            level,
            base: { service: "embedding-server" },
            redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
            timestamp: pino.stdTimeFunctions.isoTime,
        },
        destination as pino.DestinationStream | undefined,
    );
}
