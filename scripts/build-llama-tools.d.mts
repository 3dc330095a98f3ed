export const TOOL_TARGETS: string[];
export function existingToolsBinDir(): string | undefined;
export function buildLlamaTools(): Promise<string>;
