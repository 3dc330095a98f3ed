// Node-API surface of the native embedding engine.
//
//   loadModel(path, options) -> Promise<Model>          (loads off the JS thread)
//   Model#info                                         (plain object, see infoObject())
//   Model#tokenize(text, addSpecial, parseSpecial?)    -> Uint32Array (sync, thread-safe tokenizer)
//   Model#tokenizeAsync(text, addSpecial, parseSpecial?) -> Promise<Uint32Array> (libuv pool)
//   Model#embed(Uint32Array[])                          -> Promise<Float32Array> (n * info.outputDims)
//   Model#dispose()                                     -> Promise<void>
//   systemInfo(), devices(), physicalCores(), setLogging(bool)
//
// Each model owns one llama_context and one dedicated worker thread; embed() calls queue up in
// FIFO order on that thread (so calls are serialized without blocking libuv's pool), and results
// come back through a thread-safe function.
#include <napi.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core.h"
#include "system.h"

namespace embnative {

class ModelWrap;

struct AddonData {
    Napi::FunctionReference modelCtor;
};

struct Job {
    enum Kind { kEmbed, kStop };
    Job(Kind k) : kind(k) {}
    Job(Napi::Env env, Kind k) : kind(k), deferred(Napi::Promise::Deferred::New(env)) {}
    Kind kind;
    std::optional<Napi::Promise::Deferred> deferred;  // touched on the JS thread only
    bool notify = true;                // false: nobody waits (teardown), just delete
    std::vector<int32_t> tokens;
    std::vector<uint32_t> lengths;
    int threads = 0;                   // >0: decode this job with that many threads
    std::vector<float> out;
    std::string error;
    bool ok = false;
};

static const char * pooling_name(int p) {
    switch (p) {
        case LLAMA_POOLING_TYPE_NONE: return "none";
        case LLAMA_POOLING_TYPE_MEAN: return "mean";
        case LLAMA_POOLING_TYPE_CLS:  return "cls";
        case LLAMA_POOLING_TYPE_LAST: return "last";
        case LLAMA_POOLING_TYPE_RANK: return "rank";
        default:                      return "unspecified";
    }
}

static int pooling_from_value(const Napi::Value & v) {
    if (v.IsNumber()) return v.As<Napi::Number>().Int32Value();
    if (!v.IsString()) throw Napi::TypeError::New(v.Env(), "options.pooling must be a string");
    const std::string s = v.As<Napi::String>().Utf8Value();
    if (s == "none") return LLAMA_POOLING_TYPE_NONE;
    if (s == "mean") return LLAMA_POOLING_TYPE_MEAN;
    if (s == "cls") return LLAMA_POOLING_TYPE_CLS;
    if (s == "last") return LLAMA_POOLING_TYPE_LAST;
    if (s == "rank") return LLAMA_POOLING_TYPE_RANK;
    throw Napi::TypeError::New(v.Env(), "options.pooling must be one of none, mean, cls, last, rank");
}

static Napi::Object info_object(Napi::Env env, const ModelInfo & i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("architecture", i.architecture);
    o.Set("name", i.name);
    o.Set("description", i.description);
    o.Set("fileType", i.fileType);
    o.Set("fileTypeName", i.fileTypeName);
    o.Set("nEmbd", i.nEmbd);
    o.Set("outputDims", i.outputDims);
    o.Set("nCtxTrain", i.nCtxTrain);
    o.Set("nLayer", i.nLayer);
    o.Set("nParams", (double) i.nParams);
    o.Set("modelSize", (double) i.modelSize);
    o.Set("vocabSize", i.vocabSize);
    o.Set("vocabType", i.vocabType);
    o.Set("pooling", pooling_name(i.pooling));
    o.Set("causal", i.causal);
    o.Set("hasEncoder", i.hasEncoder);
    o.Set("hasDecoder", i.hasDecoder);
    o.Set("hasMemory", i.hasMemory);
    o.Set("kvUnified", i.kvUnified);
    o.Set("lastTokenOnly", i.lastTokenOnly);
    o.Set("nClsOut", i.nClsOut);
    o.Set("bos", i.bos);
    o.Set("eos", i.eos);
    o.Set("sep", i.sep);
    o.Set("eot", i.eot);
    o.Set("pad", i.pad);
    o.Set("addBos", i.addBos);
    o.Set("addEos", i.addEos);
    o.Set("addSep", i.addSep);
    o.Set("nCtx", i.nCtx);
    o.Set("nCtxSeq", i.nCtxSeq);
    o.Set("nBatch", i.nBatch);
    o.Set("nUbatch", i.nUbatch);
    o.Set("nSeqMax", i.nSeqMax);
    o.Set("maxSequenceTokens", i.maxSequenceTokens);
    o.Set("maxBatchTokens", i.maxBatchTokens);
    o.Set("packTokens", i.packTokens);
    o.Set("threads", i.threads);
    o.Set("gpuLayers", i.gpuLayers);
    o.Set("gpu", i.gpu);
    o.Set("devices", i.devices);
    return o;
}

static Napi::Uint32Array to_uint32_array(Napi::Env env, const std::vector<int32_t> & v) {
    Napi::Uint32Array arr = Napi::Uint32Array::New(env, v.size());
    if (!v.empty()) std::memcpy(arr.Data(), v.data(), v.size() * sizeof(int32_t));
    return arr;
}

// ---------------------------------------------------------------------------------------------

class TokenizeWorker : public Napi::AsyncWorker {
public:
    TokenizeWorker(Napi::Env env, std::shared_ptr<Core> core, std::string text, bool addSpecial, bool parseSpecial)
        : Napi::AsyncWorker(env, "embedding_native.tokenize"),
          deferred_(Napi::Promise::Deferred::New(env)),
          core_(std::move(core)),
          text_(std::move(text)),
          addSpecial_(addSpecial),
          parseSpecial_(parseSpecial) {}

    Napi::Promise Promise() { return deferred_.Promise(); }

    void Execute() override {
        std::string error;
        if (!core_->Tokenize(text_, addSpecial_, parseSpecial_, out_, error)) SetError(error);
    }
    void OnOK() override { deferred_.Resolve(to_uint32_array(Env(), out_)); }
    void OnError(const Napi::Error & e) override { deferred_.Reject(e.Value()); }

private:
    Napi::Promise::Deferred deferred_;
    std::shared_ptr<Core> core_;
    std::string text_;
    bool addSpecial_;
    bool parseSpecial_;
    std::vector<int32_t> out_;
};

// ---------------------------------------------------------------------------------------------

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
public:
    static void CallJs(Napi::Env env, Napi::Function, ModelWrap * self, Job * job);
    using TSFN = Napi::TypedThreadSafeFunction<ModelWrap, Job, &ModelWrap::CallJs>;

    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "EmbeddingModel",
                           {
                               InstanceAccessor<&ModelWrap::GetInfo>("info"),
                               InstanceAccessor<&ModelWrap::GetDisposed>("disposed"),
                               InstanceMethod<&ModelWrap::Tokenize>("tokenize"),
                               InstanceMethod<&ModelWrap::TokenizeAsync>("tokenizeAsync"),
                               InstanceMethod<&ModelWrap::Embed>("embed"),
                               InstanceMethod<&ModelWrap::Dispose>("dispose"),
                           });
    }

    explicit ModelWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<ModelWrap>(info) {
        Napi::Env env = info.Env();
        if (info.Length() < 1 || !info[0].IsExternal()) {
            throw Napi::TypeError::New(env, "EmbeddingModel cannot be constructed directly; use loadModel()");
        }
        env_ = env;
        core_ = *info[0].As<Napi::External<std::shared_ptr<Core>>>().Data();
        tsfn_ = TSFN::New(env, "embedding_native.embed", 0, 1, this);
        tsfn_.Unref(env);  // an idle model must not keep the process alive
        // Registered after the TSFN's own hook, so it runs first (hooks run in reverse order).
        hasCleanupHook_ = napi_add_env_cleanup_hook(env, &ModelWrap::OnEnvCleanup, this) == napi_ok;
        std::shared_ptr<Core> core = core_;
        thread_ = std::thread([this, core]() { Loop(core); });
    }

    ~ModelWrap() override {
        if (hasCleanupHook_) {
            hasCleanupHook_ = false;
            napi_remove_env_cleanup_hook(env_, &ModelWrap::OnEnvCleanup, this);
        }
        Shutdown();
    }

private:
    static void OnEnvCleanup(void * arg) {
        auto * self = static_cast<ModelWrap *>(arg);
        self->hasCleanupHook_ = false;
        self->Shutdown();
    }

    // Stops the worker without notifying JS (GC or environment teardown). Idempotent.
    void Shutdown() {
        if (thread_.joinable()) {
            Job * stop = new Job(Job::kStop);
            stop->notify = false;
            {
                std::lock_guard<std::mutex> lock(mu_);
                queue_.push_front(stop);  // queued embeds are failed, not computed
            }
            cv_.notify_one();
            thread_.join();
        }
        if (!tsfnReleased_) {
            tsfnReleased_ = true;
            tsfn_.Release();
        }
        if (core_) {
            core_->Free();
            core_.reset();
        }
        disposed_ = true;
    }

    void Loop(std::shared_ptr<Core> core) {
        for (;;) {
            Job * job;
            {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait(lock, [this] { return !queue_.empty(); });
                job = queue_.front();
                queue_.pop_front();
            }
            if (job->kind == Job::kStop) {
                core->Free();  // deterministic: waits for running tokenizations
                core.reset();
                // Jobs queued behind the stop (none normally: dispose marks the model first).
                std::deque<Job *> rest;
                {
                    std::lock_guard<std::mutex> lock(mu_);
                    rest.swap(queue_);
                }
                for (Job * r : rest) {
                    r->error = "the model has been disposed";
                    Deliver(r);
                }
                job->ok = true;
                Deliver(job);
                return;
            }
            job->ok = core->Embed(job->tokens, job->lengths, job->out, job->error, job->threads);
            Deliver(job);
        }
    }

    void Deliver(Job * job) {
        if (!job->notify || !job->deferred) {
            delete job;
            return;
        }
        if (tsfn_.BlockingCall(job) != napi_ok) delete job;  // environment is shutting down
    }

    // JS thread: account for a queued job (keeps the process and this object alive until done).
    void Submit(Napi::Env env, Job * job) {
        if (pending_++ == 0) {
            tsfn_.Ref(env);
            Ref();
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            queue_.push_back(job);
        }
        cv_.notify_one();
    }

    void Settled(Napi::Env env) {
        if (--pending_ == 0) {
            if (!tsfnReleased_) tsfn_.Unref(env);
            Unref();
        }
    }

    void ThrowIfDisposed(Napi::Env env) const {
        if (disposed_) throw Napi::Error::New(env, "the model has been disposed");
    }

    Napi::Value GetInfo(const Napi::CallbackInfo & info) {
        if (!core_) throw Napi::Error::New(info.Env(), "the model has been disposed");
        return info_object(info.Env(), core_->info());
    }

    Napi::Value GetDisposed(const Napi::CallbackInfo & info) { return Napi::Boolean::New(info.Env(), disposed_); }

    static void ReadTokenizeArgs(const Napi::CallbackInfo & info, std::string & text, bool & addSpecial, bool & parseSpecial) {
        if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "tokenize(text: string, addSpecial?: boolean)");
        text = info[0].As<Napi::String>().Utf8Value();
        addSpecial = info.Length() > 1 && info[1].ToBoolean().Value();
        parseSpecial = info.Length() > 2 && info[2].ToBoolean().Value();
    }

    Napi::Value Tokenize(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        ThrowIfDisposed(env);
        std::string text;
        bool addSpecial, parseSpecial;
        ReadTokenizeArgs(info, text, addSpecial, parseSpecial);
        std::vector<int32_t> out;
        std::string error;
        if (!core_->Tokenize(text, addSpecial, parseSpecial, out, error)) throw Napi::Error::New(env, error);
        return to_uint32_array(env, out);
    }

    Napi::Value TokenizeAsync(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        ThrowIfDisposed(env);
        std::string text;
        bool addSpecial, parseSpecial;
        ReadTokenizeArgs(info, text, addSpecial, parseSpecial);
        auto * w = new TokenizeWorker(env, core_, std::move(text), addSpecial, parseSpecial);
        Napi::Promise p = w->Promise();
        w->Queue();
        return p;
    }

    Napi::Value Embed(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        ThrowIfDisposed(env);
        auto reject = [&](Napi::Error err) {
            auto d = Napi::Promise::Deferred::New(env);
            d.Reject(err.Value());
            return d.Promise();
        };
        if (info.Length() < 1 || !info[0].IsArray()) {
            return reject(Napi::TypeError::New(env, "embed(sequences: Uint32Array[]) expects an array"));
        }
        Napi::Array arr = info[0].As<Napi::Array>();
        const uint32_t n = arr.Length();
        std::unique_ptr<Job> job(new Job(env, Job::kEmbed));
        job->lengths.reserve(n);
        for (uint32_t s = 0; s < n; ++s) {
            Napi::Value v = arr.Get(s);
            if (!v.IsTypedArray()) {
                return reject(Napi::TypeError::New(env, "sequence " + std::to_string(s) + " is not a Uint32Array"));
            }
            // napi_get_typedarray_info's data pointer already includes the byte offset and also
            // works for arrays over a SharedArrayBuffer
            napi_typedarray_type t;
            size_t len = 0;
            void * raw = nullptr;
            if (napi_get_typedarray_info(env, v, &t, &len, &raw, nullptr, nullptr) != napi_ok ||
                (t != napi_uint32_array && t != napi_int32_array)) {
                return reject(Napi::TypeError::New(env, "sequence " + std::to_string(s) + " is not a Uint32Array"));
            }
            const int32_t * data = static_cast<const int32_t *>(raw);
            if (len > 0 && data == nullptr) {
                return reject(Napi::TypeError::New(env, "sequence " + std::to_string(s) + " has a detached buffer"));
            }
            job->tokens.insert(job->tokens.end(), data, data + len);
            job->lengths.push_back((uint32_t) len);
        }
        if (n == 0) {
            auto d = Napi::Promise::Deferred::New(env);
            d.Resolve(Napi::Float32Array::New(env, 0));
            return d.Promise();
        }
        const std::string bad = core_->Validate(job->tokens, job->lengths);
        if (!bad.empty()) return reject(Napi::RangeError::New(env, bad));
        // embed(sequences, threads?): an engine pool runs one batch on all cores when it is alone
        // and splits the cores between batches under load.
        if (info.Length() > 1 && info[1].IsNumber()) job->threads = std::max(0, info[1].As<Napi::Number>().Int32Value());
        Napi::Promise p = job->deferred->Promise();
        Submit(env, job.release());
        return p;
    }

    Napi::Value Dispose(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        if (disposed_) {
            if (disposePromise_.IsEmpty()) {
                auto d = Napi::Promise::Deferred::New(env);
                d.Resolve(env.Undefined());
                return d.Promise();
            }
            return disposePromise_.Value();
        }
        disposed_ = true;
        Job * job = new Job(env, Job::kStop);
        Napi::Promise p = job->deferred->Promise();
        disposePromise_ = Napi::Persistent(p.As<Napi::Object>());
        Submit(env, job);
        return p;
    }

    std::shared_ptr<Core> core_;
    TSFN tsfn_;
    bool tsfnReleased_ = false;
    napi_env env_ = nullptr;
    bool hasCleanupHook_ = false;
    std::thread thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Job *> queue_;
    int pending_ = 0;  // JS thread only
    bool disposed_ = false;
    Napi::ObjectReference disposePromise_;
};

void ModelWrap::CallJs(Napi::Env env, Napi::Function, ModelWrap * self, Job * job) {
    std::unique_ptr<Job> owned(job);
    if (env == nullptr || self == nullptr) return;  // TSFN is being torn down
    Napi::HandleScope scope(env);
    if (job->kind == Job::kStop) {
        if (self->thread_.joinable()) self->thread_.join();
        if (self->core_) self->core_.reset();
        job->deferred->Resolve(env.Undefined());
        self->Settled(env);
        if (!self->tsfnReleased_) {
            self->tsfnReleased_ = true;
            self->tsfn_.Release();
        }
        self->disposePromise_.Reset();
        return;
    }
    if (job->ok) {
        Napi::Float32Array arr = Napi::Float32Array::New(env, job->out.size());
        if (!job->out.empty()) std::memcpy(arr.Data(), job->out.data(), job->out.size() * sizeof(float));
        job->deferred->Resolve(arr);
    } else {
        job->deferred->Reject(Napi::Error::New(env, job->error).Value());
    }
    self->Settled(env);
}

// ---------------------------------------------------------------------------------------------

class LoadWorker : public Napi::AsyncWorker {
public:
    LoadWorker(Napi::Env env, LoadParams params)
        : Napi::AsyncWorker(env, "embedding_native.loadModel"),
          deferred_(Napi::Promise::Deferred::New(env)),
          params_(std::move(params)) {}

    Napi::Promise Promise() { return deferred_.Promise(); }

    void Execute() override {
        std::string error;
        core_ = Core::Load(params_, error);
        if (!core_) SetError(error.empty() ? "failed to load model" : error);
    }

    void OnOK() override {
        Napi::Env env = Env();
        AddonData * data = env.GetInstanceData<AddonData>();
        auto ext = Napi::External<std::shared_ptr<Core>>::New(env, &core_);
        Napi::Object obj = data->modelCtor.New({ext});
        core_.reset();  // the model object holds its own reference now
        deferred_.Resolve(obj);
    }

    void OnError(const Napi::Error & e) override { deferred_.Reject(e.Value()); }

private:
    Napi::Promise::Deferred deferred_;
    LoadParams params_;
    std::shared_ptr<Core> core_;
};

static int int_option(const Napi::Object & o, const char * key, int def) {
    if (!o.Has(key)) return def;
    Napi::Value v = o.Get(key);
    if (v.IsUndefined() || v.IsNull()) return def;
    if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("options.") + key + " must be a number");
    return v.As<Napi::Number>().Int32Value();
}

static Napi::Value LoadModel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "loadModel(path: string, options?: object)");
    LoadParams p;
    p.path = info[0].As<Napi::String>().Utf8Value();
    if (info.Length() > 1 && info[1].IsObject()) {
        Napi::Object o = info[1].As<Napi::Object>();
        p.gpuLayers = int_option(o, "gpuLayers", p.gpuLayers);
        p.threads = int_option(o, "threads", p.threads);
        p.contextSize = int_option(o, "contextSize", p.contextSize);
        p.batchSize = int_option(o, "batchSize", p.batchSize);
        p.ubatchSize = int_option(o, "ubatchSize", p.ubatchSize);
        p.maxSequences = int_option(o, "maxSequences", p.maxSequences);
        if (o.Has("lastTokenOutputs")) {
            Napi::Value v = o.Get("lastTokenOutputs");
            if (!v.IsUndefined() && !v.IsNull()) {
                if (!v.IsBoolean()) throw Napi::TypeError::New(env, "options.lastTokenOutputs must be a boolean");
                p.lastTokenOutputs = v.As<Napi::Boolean>().Value();
            }
        }
        if (o.Has("pooling")) {
            Napi::Value v = o.Get("pooling");
            if (!v.IsUndefined() && !v.IsNull()) p.pooling = pooling_from_value(v);
        }
    }
    auto * w = new LoadWorker(env, std::move(p));
    Napi::Promise promise = w->Promise();
    w->Queue();
    return promise;
}

static Napi::Value SystemInfoJs(const Napi::CallbackInfo & info) {
    return Napi::String::New(info.Env(), SystemInfo());
}

static Napi::Value DevicesJs(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto devs = Devices();
    Napi::Array arr = Napi::Array::New(env, devs.size());
    for (size_t i = 0; i < devs.size(); ++i) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", devs[i].name);
        o.Set("description", devs[i].description);
        o.Set("backend", devs[i].backend);
        o.Set("type", devs[i].type);
        o.Set("memoryFree", (double) devs[i].memoryFree);
        o.Set("memoryTotal", (double) devs[i].memoryTotal);
        arr.Set((uint32_t) i, o);
    }
    return arr;
}

static Napi::Value PhysicalCoresJs(const Napi::CallbackInfo & info) {
    return Napi::Number::New(info.Env(), PhysicalCores());
}

static Napi::Value SetLoggingJs(const Napi::CallbackInfo & info) {
    SetLogging(info.Length() > 0 && info[0].ToBoolean().Value());
    return info.Env().Undefined();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    EnsureBackend();
    auto * data = new AddonData();
    data->modelCtor = Napi::Persistent(ModelWrap::Define(env));
    env.SetInstanceData<AddonData>(data);

    exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
    exports.Set("systemInfo", Napi::Function::New(env, SystemInfoJs, "systemInfo"));
    exports.Set("devices", Napi::Function::New(env, DevicesJs, "devices"));
    exports.Set("physicalCores", Napi::Function::New(env, PhysicalCoresJs, "physicalCores"));
    exports.Set("setLogging", Napi::Function::New(env, SetLoggingJs, "setLogging"));
    exports.Set("abiVersion", Napi::Number::New(env, 1));
    return exports;
}

}  // namespace embnative

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
    return embnative::Init(env, exports);
}

NODE_API_MODULE(embedding_native, InitModule)
