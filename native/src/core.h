// The llama.cpp side of the addon: one model + one embedding context, no Node-API here.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "llama.h"

namespace embnative {

struct LoadParams {
    std::string path;
    int gpuLayers = -1;   // <0: all layers
    int threads = 0;      // <=0: physical cores
    int contextSize = 0;  // per sequence; <=0: training context capped at 8192
    int batchSize = 2048;
    int ubatchSize = 0;   // <=0: = batchSize
    int maxSequences = 8;
    int pooling = -1;     // llama_pooling_type; -1: from the GGUF
    bool lastTokenOutputs = true;  // false: let llama.cpp pool last-token models (every token an output)
};

struct ModelInfo {
    std::string architecture;
    std::string description;   // llama_model_desc
    std::string fileType;      // e.g. "Q8_0", "F16", "Q4_K_M"
    std::string fileTypeName;  // llama_ftype_name, e.g. "Q4_K - Medium"
    std::string name;          // general.name, may be empty
    int32_t nEmbd = 0;         // llama_model_n_embd_out
    int32_t outputDims = 0;    // floats per sequence returned by Embed (n_cls_out for rank)
    int32_t nCtxTrain = 0;
    int32_t nLayer = 0;
    uint64_t nParams = 0;
    uint64_t modelSize = 0;    // bytes of tensors
    int32_t vocabSize = 0;
    int32_t vocabType = 0;
    int pooling = 0;           // effective llama_pooling_type
    bool causal = true;
    bool hasEncoder = false;
    bool hasDecoder = true;
    bool hasMemory = true;     // KV cache exists (false for BERT-like encoders)
    bool kvUnified = false;
    bool lastTokenOnly = false;  // last-token pooling done here from the one output per sequence
    uint32_t nClsOut = 0;
    // special tokens (-1 = none)
    int32_t bos = -1, eos = -1, sep = -1, eot = -1, pad = -1;
    bool addBos = false, addEos = false, addSep = false;
    // context actually created
    uint32_t nCtx = 0;          // total KV cells
    uint32_t nCtxSeq = 0;       // per sequence, as llama.cpp reports it
    uint32_t nBatch = 0;
    uint32_t nUbatch = 0;
    uint32_t nSeqMax = 0;
    uint32_t maxSequenceTokens = 0;  // longest sequence Embed accepts
    uint32_t maxBatchTokens = 0;     // most tokens one decode can take
    uint32_t packTokens = 0;         // most tokens Embed packs into one decode (a longer lone sequence still goes alone)
    int32_t threads = 0;
    int32_t gpuLayers = 0;           // layers actually offloaded
    std::string gpu;                 // "metal" | "cuda" | "vulkan" | "cpu" | other lowercase backend name
    std::string devices;             // human-readable device list
};

class Core {
public:
    static std::shared_ptr<Core> Load(const LoadParams & params, std::string & error);
    ~Core();

    Core(const Core &) = delete;
    Core & operator=(const Core &) = delete;

    const ModelInfo & info() const { return info_; }

    /** Frees the context and the model (idempotent; waits for a running Embed/Tokenize). */
    void Free();
    bool freed() const;

    /** Thread-safe. Returns false with `error` set when the model is freed or tokenizing fails. */
    bool Tokenize(const std::string & text, bool addSpecial, bool parseSpecial,
                  std::vector<int32_t> & out, std::string & error) const;

    /** Checks sequences before they are queued: non-empty, within limits, token ids in range. */
    std::string Validate(const std::vector<int32_t> & tokens, const std::vector<uint32_t> & lengths) const;

    /**
     * Embeds the sequences (concatenated in `tokens`, split by `lengths`) into `out`
     * (lengths.size() * outputDims floats). Not re-entrant: call from one thread at a time.
     */
    bool Embed(const std::vector<int32_t> & tokens, const std::vector<uint32_t> & lengths,
               std::vector<float> & out, std::string & error, int threads = 0);

private:
    Core() = default;

    /** True when the context outputs only flagged tokens (needs the patched llama-context.cpp). */
    bool ProbeLastTokenOutput();

    mutable std::shared_mutex life_;  // shared: using model/ctx; exclusive: Free()
    llama_model * model_ = nullptr;
    llama_context * ctx_ = nullptr;
    const llama_vocab * vocab_ = nullptr;
    llama_batch batch_{};
    bool hasBatch_ = false;
    ModelInfo info_;
};

}  // namespace embnative
