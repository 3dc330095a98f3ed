export function buildNative(): Promise<{ ok: boolean; node?: string; reason?: string }>;
export function buildDecodeLoop(): Promise<string>;
