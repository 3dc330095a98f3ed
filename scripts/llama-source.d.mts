export function userCacheRoot(): string;
export function nodeLlamaCppDir(): string;
export function pinnedRelease(): { tag: string; bundle: string; id: string };
export function ensureLlamaSource(options?: { log?: (message: string) => void }): string;
