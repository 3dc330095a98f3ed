import type { Engine } from "./engine.js";

/**
 * Several copies of one model, each decoding its own batch at the same time. On a few CPU cores
 * two single-threaded decodes waste less in synchronisation than one two-threaded decode of the
 * same work. The batcher keeps `concurrency` batches in flight; each goes to an idle copy. A batch
 * that runs alone gets every copy's threads, so light load keeps the latency of one big engine.
 */
export class EnginePool implements Engine {
    private readonly idle: Engine[];
    private readonly waiting: ((e: Engine) => void)[] = [];

    constructor(private readonly engines: readonly Engine[]) {
        if (engines.length === 0) throw new Error("an engine pool needs at least one engine");
        this.idle = [...engines];
    }

    get info() {
        return this.engines[0]!.info;
    }
    get backend() {
        const first = this.engines[0]!.backend;
        return { ...first, threads: first.threads * this.engines.length, details: `${this.engines.length} replicas x ${first.threads} thread(s); ${first.details ?? ""}` };
    }
    get maxBatchTokens() {
        return this.engines[0]!.maxBatchTokens;
    }
    get maxBatchSequences() {
        return this.engines[0]!.maxBatchSequences;
    }
    get specialTokens() {
        return this.engines[0]!.specialTokens;
    }
    /** Batches that can run at once. */
    get concurrency(): number {
        return this.engines.length;
    }

    tokenize(text: string, addSpecial: boolean): Promise<Uint32Array> {
        return this.engines[0]!.tokenize(text, addSpecial);
    }

    async embed(sequences: readonly Uint32Array[]): Promise<Float32Array[]> {
        const engine = this.idle.pop() ?? (await new Promise<Engine>((r) => this.waiting.push(r)));
        const perCopy = engine.backend.threads;
        const alone = this.idle.length === this.engines.length - 1;
        try {
            return await engine.embed(sequences, { threads: alone ? perCopy * this.engines.length : perCopy });
        } finally {
            const next = this.waiting.shift();
            if (next) next(engine);
            else this.idle.push(engine);
        }
    }

    async dispose(): Promise<void> {
        await Promise.all(this.engines.map((e) => e.dispose()));
    }
}
