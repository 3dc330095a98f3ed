// The physical limit for `npm run bench:engine`: a plain C++ loop that packs S random token
// sequences of L tokens into one llama_decode, over and over, on the same static llama.cpp build
// as the addon, and reads each sequence's pooled vector. No Node, no queue, no tokenizer.
//
//   embedding_decode_loop <model.gguf> <threads> <tokens per sequence> <seconds per row>
//                         <outputs: pooled|last> <S> [<S> ...]
//
// "pooled" lets llama.cpp pool (every token is an output); "last" flags only each sequence's
// last token and reads its hidden state (needs the addon's patched llama-context.cpp; only
// meaningful for causal last-token models). Prints one JSON object per S on stdout.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "llama.h"

static void quiet_log(ggml_log_level level, const char * text, void *) {
    if (level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

int main(int argc, char ** argv) {
    if (argc < 7) {
        std::fprintf(stderr, "usage: %s model.gguf threads tokens seconds pooled|last S [S ...]\n", argv[0]);
        return 2;
    }
    const std::string path = argv[1];
    const int threads = std::atoi(argv[2]);
    const int len = std::atoi(argv[3]);
    const double seconds = std::atof(argv[4]);
    const bool last_only = std::strcmp(argv[5], "last") == 0;
    std::vector<int> sizes;
    for (int i = 6; i < argc; ++i) sizes.push_back(std::atoi(argv[i]));
    const int max_seqs = *std::max_element(sizes.begin(), sizes.end());

    llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(path.c_str(), mp);
    if (!model) {
        std::fprintf(stderr, "failed to load %s\n", path.c_str());
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    const int n_embd = llama_model_n_embd_out(model);

    llama_context_params cp = llama_context_default_params();
    cp.embeddings = true;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.n_seq_max = (uint32_t) max_seqs;
    cp.n_batch = (uint32_t) (max_seqs * len);
    cp.n_ubatch = cp.n_batch;
    cp.kv_unified = false;
    cp.n_ctx = (uint32_t) (max_seqs * len);
    cp.no_perf = true;
    if (last_only) cp.pooling_type = LLAMA_POOLING_TYPE_NONE;
    // LOOP_FLASH_ATTN=0|1 forces flash attention off/on (default: llama.cpp's auto), for experiments.
    if (const char * fa = std::getenv("LOOP_FLASH_ATTN")) {
        cp.flash_attn_type = std::atoi(fa) ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        std::fprintf(stderr, "failed to create the context\n");
        return 1;
    }
    const bool has_memory = llama_get_memory(ctx) != nullptr;

    std::mt19937 rng(42);
    std::uniform_int_distribution<int> pick(std::min(1000, n_vocab - 1), n_vocab - 1);
    llama_batch batch = llama_batch_init(max_seqs * len, 0, 1);
    std::vector<float> sink((size_t) n_embd);

    for (int seqs : sizes) {
        auto decode_once = [&]() -> bool {
            batch.n_tokens = 0;
            for (int s = 0; s < seqs; ++s) {
                for (int p = 0; p < len; ++p) {
                    const int k = batch.n_tokens++;
                    batch.token[k] = pick(rng);
                    batch.pos[k] = p;
                    batch.n_seq_id[k] = 1;
                    batch.seq_id[k][0] = s;
                    batch.logits[k] = !last_only || p == len - 1;
                }
            }
            if (has_memory) llama_memory_clear(llama_get_memory(ctx), false);
            if (llama_decode(ctx, batch) != 0) return false;
            for (int s = 0; s < seqs; ++s) {
                const float * e = last_only ? llama_get_embeddings_ith(ctx, s * len + len - 1) : llama_get_embeddings_seq(ctx, s);
                if (!e) return false;
                std::memcpy(sink.data(), e, sizeof(float) * (size_t) n_embd);
            }
            return true;
        };
        if (!decode_once()) {  // warm-up
            std::fprintf(stderr, "llama_decode failed (S=%d)\n", seqs);
            return 1;
        }
        const auto start = std::chrono::steady_clock::now();
        long decodes = 0;
        double elapsed = 0;
        do {
            if (!decode_once()) {
                std::fprintf(stderr, "llama_decode failed (S=%d)\n", seqs);
                return 1;
            }
            ++decodes;
            elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        } while (elapsed < seconds);
        std::printf("{\"seqsPerDecode\":%d,\"decodes\":%ld,\"seconds\":%.4f,\"embeddingsPerSecond\":%.3f}\n", seqs, decodes,
                    elapsed, (double) decodes * seqs / elapsed);
        std::fflush(stdout);
    }

    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
