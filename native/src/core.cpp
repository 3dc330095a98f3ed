#include "core.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <stdexcept>

#include "llama.h"
#include "system.h"

namespace embnative {

// ---------------------------------------------------------------------------------------------
// Registry of live cores, freed at process exit. ggml's Metal backend asserts in a static
// destructor when Metal buffers are still alive, so every model must be gone before that runs.
// The atexit handler is registered after the first model load, i.e. after ggml's statics were
// constructed, which makes it run before their destructors.

static std::mutex g_registry_mu;
static std::vector<std::weak_ptr<Core>> g_registry;

static void free_all_cores() {
    std::vector<std::shared_ptr<Core>> live;
    {
        std::lock_guard<std::mutex> lock(g_registry_mu);
        for (auto & w : g_registry) {
            if (auto c = w.lock()) live.push_back(std::move(c));
        }
        g_registry.clear();
    }
    for (auto & c : live) c->Free();
}

static void register_core(const std::shared_ptr<Core> & core) {
    static std::once_flag once;
    std::call_once(once, [] { std::atexit(free_all_cores); });
    std::lock_guard<std::mutex> lock(g_registry_mu);
    g_registry.erase(std::remove_if(g_registry.begin(), g_registry.end(),
                                    [](const std::weak_ptr<Core> & w) { return w.expired(); }),
                     g_registry.end());
    g_registry.push_back(core);
}

// ---------------------------------------------------------------------------------------------

static std::string meta_str(const llama_model * model, const std::string & key) {
    char buf[512];
    int32_t n = llama_model_meta_val_str(model, key.c_str(), buf, sizeof(buf));
    if (n < 0) return std::string();
    if ((size_t) n >= sizeof(buf)) {
        std::vector<char> big((size_t) n + 1);
        llama_model_meta_val_str(model, key.c_str(), big.data(), big.size());
        return std::string(big.data());
    }
    return std::string(buf);
}

static const char * ftype_short(int ftype) {
    switch (ftype & ~LLAMA_FTYPE_GUESSED) {
        case LLAMA_FTYPE_ALL_F32:          return "F32";
        case LLAMA_FTYPE_MOSTLY_F16:       return "F16";
        case LLAMA_FTYPE_MOSTLY_BF16:      return "BF16";
        case LLAMA_FTYPE_MOSTLY_Q4_0:      return "Q4_0";
        case LLAMA_FTYPE_MOSTLY_Q4_1:      return "Q4_1";
        case LLAMA_FTYPE_MOSTLY_Q5_0:      return "Q5_0";
        case LLAMA_FTYPE_MOSTLY_Q5_1:      return "Q5_1";
        case LLAMA_FTYPE_MOSTLY_Q8_0:      return "Q8_0";
        case LLAMA_FTYPE_MOSTLY_Q2_K:      return "Q2_K";
        case LLAMA_FTYPE_MOSTLY_Q2_K_S:    return "Q2_K_S";
        case LLAMA_FTYPE_MOSTLY_Q3_K_S:    return "Q3_K_S";
        case LLAMA_FTYPE_MOSTLY_Q3_K_M:    return "Q3_K_M";
        case LLAMA_FTYPE_MOSTLY_Q3_K_L:    return "Q3_K_L";
        case LLAMA_FTYPE_MOSTLY_Q4_K_S:    return "Q4_K_S";
        case LLAMA_FTYPE_MOSTLY_Q4_K_M:    return "Q4_K_M";
        case LLAMA_FTYPE_MOSTLY_Q5_K_S:    return "Q5_K_S";
        case LLAMA_FTYPE_MOSTLY_Q5_K_M:    return "Q5_K_M";
        case LLAMA_FTYPE_MOSTLY_Q6_K:      return "Q6_K";
        case LLAMA_FTYPE_MOSTLY_IQ2_XXS:   return "IQ2_XXS";
        case LLAMA_FTYPE_MOSTLY_IQ2_XS:    return "IQ2_XS";
        case LLAMA_FTYPE_MOSTLY_IQ2_S:     return "IQ2_S";
        case LLAMA_FTYPE_MOSTLY_IQ2_M:     return "IQ2_M";
        case LLAMA_FTYPE_MOSTLY_IQ3_XS:    return "IQ3_XS";
        case LLAMA_FTYPE_MOSTLY_IQ3_XXS:   return "IQ3_XXS";
        case LLAMA_FTYPE_MOSTLY_IQ3_S:     return "IQ3_S";
        case LLAMA_FTYPE_MOSTLY_IQ3_M:     return "IQ3_M";
        case LLAMA_FTYPE_MOSTLY_IQ1_S:     return "IQ1_S";
        case LLAMA_FTYPE_MOSTLY_IQ1_M:     return "IQ1_M";
        case LLAMA_FTYPE_MOSTLY_IQ4_NL:    return "IQ4_NL";
        case LLAMA_FTYPE_MOSTLY_IQ4_XS:    return "IQ4_XS";
        case LLAMA_FTYPE_MOSTLY_TQ1_0:     return "TQ1_0";
        case LLAMA_FTYPE_MOSTLY_TQ2_0:     return "TQ2_0";
        case LLAMA_FTYPE_MOSTLY_MXFP4_MOE: return "MXFP4_MOE";
        case LLAMA_FTYPE_MOSTLY_NVFP4:     return "NVFP4";
        case LLAMA_FTYPE_MOSTLY_Q1_0:      return "Q1_0";
        case LLAMA_FTYPE_MOSTLY_Q2_0:      return "Q2_0";
        default:                           return nullptr;
    }
}

static std::string lower(std::string s) {
    for (char & c : s) c = (char) std::tolower((unsigned char) c);
    return s;
}

static constexpr uint32_t kEncoderPackTokens = 512;

struct ContextPlan {
    bool causal = true;
    bool splitSafe = false;  // sequences may span micro-batches (causal + last/none pooling)
    uint32_t perSeq = 0;     // longest sequence
    llama_context_params params{};
};

/** `p.pooling` is the pooling the context is created with (never -1 here). */
static ContextPlan plan_context(const LoadParams & p, int32_t n_ctx_train, bool causal) {
    const int pooling = p.pooling;
    ContextPlan plan;
    plan.causal = causal;
    uint32_t n_batch = (uint32_t) std::max(1, p.batchSize > 0 ? p.batchSize : 2048);
    uint32_t n_ubatch = p.ubatchSize > 0 ? std::min((uint32_t) p.ubatchSize, n_batch) : n_batch;
    if (!causal) n_ubatch = n_batch;  // a non-causal sequence must sit in one micro-batch

    uint32_t n_seq = (uint32_t) std::max(1, p.maxSequences > 0 ? p.maxSequences : 8);
    n_seq = std::min<uint32_t>(n_seq, (uint32_t) llama_max_parallel_sequences());

    // With causal attention and last-token (or per-token) outputs a sequence may be split over
    // micro-batches and still give the right vector; mean/cls/rank pooling is computed per
    // micro-batch, so there every sequence must stay inside one.
    plan.splitSafe = causal && (pooling == LLAMA_POOLING_TYPE_LAST || pooling == LLAMA_POOLING_TYPE_NONE);
    const uint32_t pack_limit = plan.splitSafe ? n_batch : n_ubatch;

    uint32_t per_seq = p.contextSize > 0 ? (uint32_t) p.contextSize
                                         : (uint32_t) std::min<int32_t>(n_ctx_train > 0 ? n_ctx_train : 2048, 8192);
    per_seq = std::max<uint32_t>(1, std::min(per_seq, pack_limit));
    plan.perSeq = per_seq;

    llama_context_params cp = llama_context_default_params();
    cp.embeddings = true;
    cp.n_batch = n_batch;
    cp.n_ubatch = n_ubatch;
    cp.n_seq_max = n_seq;
    cp.no_perf = true;
    // One KV stream per sequence keeps batched vectors identical to single ones (and is faster)
    // for the split-safe case; otherwise sequences share one stream and are never split.
    cp.kv_unified = !plan.splitSafe;
    cp.n_ctx = cp.kv_unified ? std::max(per_seq, pack_limit) : per_seq * n_seq;
    if (p.pooling >= 0) cp.pooling_type = (enum llama_pooling_type) p.pooling;
    int threads = p.threads > 0 ? p.threads : PhysicalCores();
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    plan.params = cp;
    return plan;
}

std::shared_ptr<Core> Core::Load(const LoadParams & p, std::string & error) {
    EnsureBackend();

    {
        std::ifstream f(p.path, std::ios::binary);
        if (!f.good()) {
            error = "model file not found or not readable: " + p.path;
            return nullptr;
        }
    }

    std::shared_ptr<Core> core(new Core());
    ModelInfo & info = core->info_;

    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = p.gpuLayers < 0 ? -1 : p.gpuLayers;

    BeginErrorCapture();
    try {
        core->model_ = llama_model_load_from_file(p.path.c_str(), mp);
    } catch (const std::exception & e) {
        core->model_ = nullptr;
        error = e.what();
    }
    std::string why = EndErrorCapture();
    if (core->model_ == nullptr) {
        error = "failed to load model " + p.path + (why.empty() ? (error.empty() ? "" : ": " + error) : ": " + why);
        return nullptr;
    }
    llama_model * model = core->model_;

    if (llama_model_has_encoder(model) && llama_model_has_decoder(model)) {
        error = "encoder-decoder models are not supported for embeddings: " + p.path;
        core->Free();
        return nullptr;
    }

    core->vocab_ = llama_model_get_vocab(model);
    const llama_vocab * vocab = core->vocab_;

    info.architecture = meta_str(model, "general.architecture");
    info.name = meta_str(model, "general.name");
    {
        char buf[256];
        llama_model_desc(model, buf, sizeof(buf));
        info.description = buf;
    }
    const int ftype = (int) llama_model_ftype(model);
    const char * fshort = ftype_short(ftype);
    info.fileType = fshort ? fshort : ("FTYPE_" + std::to_string(ftype & ~LLAMA_FTYPE_GUESSED));
    {
        const char * fname = llama_ftype_name((enum llama_ftype) ftype);
        info.fileTypeName = fname ? fname : info.fileType;
    }
    info.nEmbd = llama_model_n_embd_out(model);
    info.nCtxTrain = llama_model_n_ctx_train(model);
    info.nLayer = llama_model_n_layer(model);
    info.nParams = llama_model_n_params(model);
    info.modelSize = llama_model_size(model);
    info.vocabSize = llama_vocab_n_tokens(vocab);
    info.vocabType = (int32_t) llama_vocab_type(vocab);
    info.hasEncoder = llama_model_has_encoder(model);
    info.hasDecoder = llama_model_has_decoder(model);
    info.bos = llama_vocab_bos(vocab);
    info.eos = llama_vocab_eos(vocab);
    info.sep = llama_vocab_sep(vocab);
    info.eot = llama_vocab_eot(vocab);
    info.pad = llama_vocab_pad(vocab);
    info.addBos = llama_vocab_get_add_bos(vocab);
    info.addEos = llama_vocab_get_add_eos(vocab);
    info.addSep = llama_vocab_get_add_sep(vocab);

    // Pooling and attention as the GGUF declares them; the context confirms them below.
    int gguf_pooling = LLAMA_POOLING_TYPE_NONE;
    {
        std::string s = meta_str(model, info.architecture + ".pooling_type");
        if (!s.empty()) gguf_pooling = std::atoi(s.c_str());
        if (gguf_pooling < 0) gguf_pooling = LLAMA_POOLING_TYPE_NONE;
    }
    const int pooling_requested = p.pooling;
    int pooling = pooling_requested >= 0 ? pooling_requested : gguf_pooling;
    if (pooling == LLAMA_POOLING_TYPE_RANK && gguf_pooling != LLAMA_POOLING_TYPE_RANK) {
        // llama.cpp would read garbage instead of a score without a classification head
        error = "rank pooling needs a reranker model (pooling_type rank in the GGUF): " + p.path;
        core->Free();
        return nullptr;
    }
    bool causal_meta = true;
    {
        std::string s = meta_str(model, info.architecture + ".attention.causal");
        if (!s.empty()) causal_meta = !(s == "false" || s == "0");
    }

    // A causal model pooled by its last token runs with pooling "none" and only each sequence's
    // last token as an output, so its last layer and LM head run on one row per sequence instead
    // of every token. That needs the addon's patched llama-context.cpp (see
    // scripts/build-native.mjs); a probe decode below falls back to llama.cpp's own pooling
    // when the library insists on outputting every token.
    bool last_token_only = p.lastTokenOutputs && pooling == LLAMA_POOLING_TYPE_LAST && causal_meta;
    auto context_pooling = [&](int logical) { return last_token_only ? (int) LLAMA_POOLING_TYPE_NONE : logical; };
    LoadParams cparams_in = p;
    cparams_in.pooling = context_pooling(pooling);

    // Create the context; an encoder without a KV cache always runs non-causally, in which
    // case the plan is redone if it assumed otherwise.
    ContextPlan plan = plan_context(cparams_in, info.nCtxTrain, causal_meta);
    for (int attempt = 0; attempt < 3; ++attempt) {
        BeginErrorCapture();
        try {
            core->ctx_ = llama_init_from_model(model, plan.params);
        } catch (const std::exception & e) {
            core->ctx_ = nullptr;
            error = e.what();
        }
        why = EndErrorCapture();
        if (core->ctx_ == nullptr) {
            error = "failed to create the embedding context" + (why.empty() ? (error.empty() ? "" : ": " + error) : ": " + why);
            core->Free();
            return nullptr;
        }
        const bool has_memory = llama_get_memory(core->ctx_) != nullptr;
        const bool causal = has_memory && causal_meta;
        const int ctx_pooling = (int) llama_pooling_type(core->ctx_);
        if (causal == plan.causal && ctx_pooling == context_pooling(pooling)) {
            if (!last_token_only || core->ProbeLastTokenOutput()) {
                info.hasMemory = has_memory;
                break;
            }
            last_token_only = false;  // this llama.cpp outputs every token of an embedding context
        } else if (!last_token_only) {
            pooling = ctx_pooling;
        }
        llama_free(core->ctx_);
        core->ctx_ = nullptr;
        last_token_only = last_token_only && causal;
        cparams_in.pooling = context_pooling(pooling);
        plan = plan_context(cparams_in, info.nCtxTrain, causal);
        if (attempt == 2) {
            error = "could not settle the embedding context parameters";
            core->Free();
            return nullptr;
        }
    }
    llama_context * ctx = core->ctx_;

    info.causal = plan.causal;
    info.lastTokenOnly = last_token_only;
    info.pooling = last_token_only ? (int) LLAMA_POOLING_TYPE_LAST : (int) llama_pooling_type(ctx);
    info.kvUnified = plan.params.kv_unified;
    info.nCtx = llama_n_ctx(ctx);
    info.nCtxSeq = llama_n_ctx_seq(ctx);
    info.nBatch = llama_n_batch(ctx);
    info.nUbatch = llama_n_ubatch(ctx);
    info.nSeqMax = llama_n_seq_max(ctx);
    info.maxBatchTokens = plan.splitSafe ? info.nBatch : std::min(info.nBatch, info.nUbatch);
    info.maxSequenceTokens = std::min(plan.perSeq, info.maxBatchTokens);
    if (info.hasMemory && info.nCtxSeq > 0) info.maxSequenceTokens = std::min(info.maxSequenceTokens, info.nCtxSeq);
    info.threads = llama_n_threads_batch(ctx);

    if (info.pooling == LLAMA_POOLING_TYPE_RANK) {
        info.nClsOut = llama_model_n_cls_out(model);
        if (info.nClsOut == 0) {
            error = "rank pooling needs a classification head, and this model has none: " + p.path;
            core->Free();
            return nullptr;
        }
        info.outputDims = (int32_t) info.nClsOut;
    } else {
        info.outputDims = info.nEmbd;
    }

    // Devices: which backend actually holds the offloaded layers.
    {
        std::string gpu_backend;
        std::string list;
        for (const auto & d : Devices()) {
            if (!list.empty()) list += ", ";
            list += d.backend + (d.description.empty() ? "" : " (" + d.description + ")");
            if (gpu_backend.empty() && (d.type == "gpu" || d.type == "igpu")) {
                // "metal", "cuda", "vulkan", or another backend's name in lower case
                gpu_backend = lower(d.backend);
            }
        }
        info.devices = list;
        const int max_layers = info.nLayer + 1;
        const int requested = mp.n_gpu_layers < 0 ? max_layers : std::min(mp.n_gpu_layers, max_layers);
        if (!gpu_backend.empty() && requested > 0) {
            info.gpu = gpu_backend;
            info.gpuLayers = requested;
        } else {
            info.gpu = "cpu";
            info.gpuLayers = 0;
        }
    }

    // An encoder batch is one micro-batch in which every query attends to every key of the batch
    // (the mask hides the other sequences, the work remains), so packing grows quadratically.
    // Measured on CPU with a 6-layer BERT: 18-token inputs peak at 16-32 per decode (288-576
    // tokens); 128-token inputs lose 9 % at 1024 tokens per decode and 21 % at 2048; 512-token
    // inputs lose 15-25 % packed 4 to a decode. So on the CPU an encoder packs up to 512 tokens.
    info.packTokens = info.maxBatchTokens;
    if (!info.causal && info.gpu == "cpu") info.packTokens = std::min<uint32_t>(info.maxBatchTokens, kEncoderPackTokens);

    core->batch_ = llama_batch_init((int32_t) info.maxBatchTokens, 0, 1);
    core->hasBatch_ = true;

    register_core(core);
    return core;
}

bool Core::ProbeLastTokenOutput() {
    const llama_token t = info_.bos >= 0 ? info_.bos : 0;
    llama_batch b = llama_batch_init(2, 0, 1);
    for (int32_t k = 0; k < 2; ++k) {
        b.token[k] = t;
        b.pos[k] = k;
        b.n_seq_id[k] = 1;
        b.seq_id[k][0] = 0;
        b.logits[k] = k == 1;
    }
    b.n_tokens = 2;
    llama_memory_clear(llama_get_memory(ctx_), false);
    int rc;
    BeginErrorCapture();
    try {
        rc = llama_decode(ctx_, b);
    } catch (const std::exception &) {
        rc = -1000;
    }
    EndErrorCapture();
    const bool ok = rc == 0 && llama_get_embeddings_ith(ctx_, 1) != nullptr;
    llama_memory_clear(llama_get_memory(ctx_), false);
    llama_batch_free(b);
    return ok;
}

Core::~Core() {
    Free();
}

void Core::Free() {
    std::unique_lock<std::shared_mutex> lock(life_);
    if (hasBatch_) {
        llama_batch_free(batch_);
        hasBatch_ = false;
    }
    if (ctx_ != nullptr) {
        llama_free(ctx_);
        ctx_ = nullptr;
    }
    if (model_ != nullptr) {
        llama_model_free(model_);
        model_ = nullptr;
    }
    vocab_ = nullptr;
}

bool Core::freed() const {
    std::shared_lock<std::shared_mutex> lock(life_);
    return ctx_ == nullptr;
}

bool Core::Tokenize(const std::string & text, bool addSpecial, bool parseSpecial, std::vector<int32_t> & out,
                    std::string & error) const {
    std::shared_lock<std::shared_mutex> lock(life_);
    if (vocab_ == nullptr) {
        error = "the model has been disposed";
        return false;
    }
    if (text.size() > (size_t) INT32_MAX / 2) {
        error = "text is too long to tokenize";
        return false;
    }
    out.resize(text.size() + 16);
    int32_t n = llama_tokenize(vocab_, text.data(), (int32_t) text.size(), out.data(), (int32_t) out.size(),
                               addSpecial, parseSpecial);
    if (n == INT32_MIN) {
        error = "tokenization overflow";
        return false;
    }
    if (n < 0) {
        out.resize((size_t) -n);
        n = llama_tokenize(vocab_, text.data(), (int32_t) text.size(), out.data(), (int32_t) out.size(), addSpecial,
                           parseSpecial);
        if (n < 0) {
            error = "tokenization failed";
            return false;
        }
    }
    out.resize((size_t) n);
    return true;
}

std::string Core::Validate(const std::vector<int32_t> & tokens, const std::vector<uint32_t> & lengths) const {
    size_t off = 0;
    for (size_t s = 0; s < lengths.size(); ++s) {
        const uint32_t len = lengths[s];
        if (len == 0) return "sequence " + std::to_string(s) + " is empty";
        if (len > info_.maxSequenceTokens) {
            return "sequence " + std::to_string(s) + " has " + std::to_string(len) + " tokens; this engine accepts at most " +
                   std::to_string(info_.maxSequenceTokens) + " per sequence";
        }
        for (uint32_t i = 0; i < len; ++i) {
            const int32_t t = tokens[off + i];
            if (t < 0 || t >= info_.vocabSize) {
                return "token id " + std::to_string((uint32_t) t) + " at position " + std::to_string(i) + " of sequence " +
                       std::to_string(s) + " is out of range [0, " + std::to_string(info_.vocabSize) + ")";
            }
        }
        off += len;
    }
    if (off != tokens.size()) return "internal error: token count mismatch";
    return std::string();
}

bool Core::Embed(const std::vector<int32_t> & tokens, const std::vector<uint32_t> & lengths, std::vector<float> & out,
                 std::string & error, int threads) {
    std::shared_lock<std::shared_mutex> lock(life_);
    if (ctx_ == nullptr) {
        error = "the model has been disposed";
        return false;
    }
    {
        const int want = threads > 0 ? threads : info_.threads;
        if (want > 0 && want != llama_n_threads_batch(ctx_)) llama_set_n_threads(ctx_, want, want);
    }
    {
        std::string bad = Validate(tokens, lengths);
        if (!bad.empty()) {
            error = bad;
            return false;
        }
    }

    const size_t n = lengths.size();
    const int32_t dims = info_.outputDims;
    const int32_t n_embd = info_.nEmbd;
    const bool own_pooling = info_.pooling == LLAMA_POOLING_TYPE_NONE;
    const bool last_only = info_.lastTokenOnly;
    out.assign(n * (size_t) dims, 0.0f);

    std::vector<size_t> offsets(n + 1, 0);
    for (size_t i = 0; i < n; ++i) offsets[i + 1] = offsets[i] + lengths[i];

    llama_memory_t mem = llama_get_memory(ctx_);
    size_t i = 0;
    while (i < n) {
        // Pack as many whole sequences as fit into one decode.
        size_t j = i;
        uint32_t n_tokens = 0;
        while (j < n && j - i < info_.nSeqMax && n_tokens + lengths[j] <= info_.maxBatchTokens &&
               (j == i || n_tokens + lengths[j] <= info_.packTokens)) {
            n_tokens += lengths[j];
            ++j;
        }
        if (j == i) {  // cannot happen after Validate, but never hand llama.cpp an oversized batch
            error = "sequence " + std::to_string(i) + " does not fit into one batch";
            return false;
        }

        llama_batch & b = batch_;
        b.n_tokens = 0;
        for (size_t s = i; s < j; ++s) {
            const llama_seq_id sid = (llama_seq_id) (s - i);
            for (uint32_t p = 0; p < lengths[s]; ++p) {
                const int32_t k = b.n_tokens++;
                b.token[k] = tokens[offsets[s] + p];
                b.pos[k] = (llama_pos) p;
                b.n_seq_id[k] = 1;
                b.seq_id[k][0] = sid;
                b.logits[k] = !last_only || p + 1 == lengths[s];
            }
        }

        llama_memory_clear(mem, false);
        int rc;
        BeginErrorCapture();
        try {
            rc = llama_decode(ctx_, b);
        } catch (const std::exception & e) {
            rc = -1000;
            error = e.what();
        }
        std::string why = EndErrorCapture();
        if (rc != 0) {
            error = "llama_decode failed (status " + std::to_string(rc) + ")" +
                    (why.empty() ? (error.empty() ? "" : ": " + error) : ": " + why);
            llama_memory_clear(mem, false);
            return false;
        }

        int32_t row = 0;
        for (size_t s = i; s < j; ++s) {
            float * dst = out.data() + s * (size_t) dims;
            const llama_seq_id sid = (llama_seq_id) (s - i);
            if (last_only) {
                // Batch index of this sequence's last token, the only output it has.
                row += (int32_t) lengths[s];
                const float * e = llama_get_embeddings_ith(ctx_, row - 1);
                if (e == nullptr) {
                    error = "no last-token embedding for sequence " + std::to_string(s);
                    return false;
                }
                std::memcpy(dst, e, sizeof(float) * (size_t) n_embd);
            } else if (own_pooling) {
                // Mean of the per-token outputs.
                const uint32_t len = lengths[s];
                for (uint32_t p = 0; p < len; ++p, ++row) {
                    const float * e = llama_get_embeddings_ith(ctx_, row);
                    if (e == nullptr) {
                        error = "no token embedding for sequence " + std::to_string(s);
                        return false;
                    }
                    for (int32_t d = 0; d < n_embd; ++d) dst[d] += e[d];
                }
                const float inv = 1.0f / (float) len;
                for (int32_t d = 0; d < n_embd; ++d) dst[d] *= inv;
            } else {
                const float * e = llama_get_embeddings_seq(ctx_, sid);
                if (e == nullptr) {
                    error = "no pooled embedding for sequence " + std::to_string(s);
                    return false;
                }
                std::memcpy(dst, e, sizeof(float) * (size_t) dims);
            }
        }
        i = j;
    }
    return true;
}

}  // namespace embnative
