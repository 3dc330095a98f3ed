import type { EmbedCallOptions, Engine } from "../../src/engine/engine.js";

/** Wraps a real engine to inject faults: delays, failures, and a record of what reached it. */
export class FaultyEngine implements Engine {
    /** Every batch that reached the real engine. */
    readonly batches: Uint32Array[][] = [];
    delayMs = 0;
    failNext = 0;

    constructor(readonly inner: Engine) {}

    get info() {
        return this.inner.info;
    }
    get backend() {
        return this.inner.backend;
    }
    get maxBatchTokens() {
        return this.inner.maxBatchTokens;
    }
    get maxBatchSequences() {
        return this.inner.maxBatchSequences;
    }
    get specialTokens() {
        return this.inner.specialTokens;
    }
    tokenize(text: string, addSpecial: boolean) {
        return this.inner.tokenize(text, addSpecial);
    }
    async embed(sequences: readonly Uint32Array[], options?: EmbedCallOptions) {
        this.batches.push([...sequences]);
        if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
        if (this.failNext > 0) {
            this.failNext--;
            throw new Error("injected engine failure: /secret/path/model.gguf decode returned -3");
        }
        return this.inner.embed(sequences, options);
    }
    dispose() {
        return this.inner.dispose();
    }
}
