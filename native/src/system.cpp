#include "system.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#if defined(__APPLE__)
#include <sys/sysctl.h>
#include <sys/types.h>
#endif

#include "ggml-backend.h"
#include "llama.h"

namespace embnative {

static std::atomic<bool> g_log_enabled{false};

struct ErrorCapture {
    bool active = false;
    bool lastWasError = false;
    std::string text;
};
static thread_local ErrorCapture t_capture;

static void log_callback(enum ggml_log_level level, const char * text, void * /*user_data*/) {
    if (text == nullptr) return;
    if (t_capture.active) {
        const bool is_error = level == GGML_LOG_LEVEL_ERROR || (level == GGML_LOG_LEVEL_CONT && t_capture.lastWasError);
        if (is_error && t_capture.text.size() < 2000) t_capture.text += text;
        if (level != GGML_LOG_LEVEL_CONT) t_capture.lastWasError = level == GGML_LOG_LEVEL_ERROR;
    }
    if (!g_log_enabled.load(std::memory_order_relaxed)) return;
    fputs(text, stderr);
}

void BeginErrorCapture() {
    t_capture.active = true;
    t_capture.lastWasError = false;
    t_capture.text.clear();
}

std::string EndErrorCapture() {
    t_capture.active = false;
    std::string s;
    s.swap(t_capture.text);
    // one line, trimmed
    for (char & c : s) {
        if (c == '\n' || c == '\r') c = ' ';
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

void SetLogging(bool enabled) {
    g_log_enabled.store(enabled, std::memory_order_relaxed);
}

void EnsureBackend() {
    static std::once_flag once;
    std::call_once(once, [] {
        const char * env = std::getenv("EMBEDDING_SERVER_LLAMA_LOG");
        g_log_enabled.store(env != nullptr && std::strcmp(env, "1") == 0);
        // Install the sink before anything can log (backend registration logs too).
        llama_log_set(log_callback, nullptr);
        llama_backend_init();
    });
}

int PhysicalCores() {
#if defined(__APPLE__)
    int32_t n = 0;
    size_t len = sizeof(n);
    if (sysctlbyname("hw.perflevel0.physicalcpu", &n, &len, nullptr, 0) == 0 && n > 0) return n;
    len = sizeof(n);
    if (sysctlbyname("hw.physicalcpu", &n, &len, nullptr, 0) == 0 && n > 0) return n;
#elif defined(__linux__)
    // Count distinct sibling sets, as llama.cpp's common library does.
    std::set<std::string> siblings;
    for (unsigned cpu = 0; cpu < 4096; ++cpu) {
        std::ifstream f("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/thread_siblings");
        if (!f.is_open()) break;
        std::string line;
        if (std::getline(f, line)) siblings.insert(line);
    }
    if (!siblings.empty()) return (int) siblings.size();
#endif
    unsigned n_threads = std::thread::hardware_concurrency();
    if (n_threads == 0) return 4;
    return n_threads > 4 ? (int) (n_threads / 2) : (int) n_threads;
}

static const char * dev_type_name(enum ggml_backend_dev_type t) {
    switch (t) {
        case GGML_BACKEND_DEVICE_TYPE_CPU:   return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU:   return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU:  return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
        default:                             return "other";
    }
}

// Registry names as ggml spells them ("MTL" is Metal) -> the names users know.
static std::string friendly_backend(const std::string & reg) {
    if (reg == "MTL" || reg == "Metal") return "Metal";
    return reg;
}

std::vector<DeviceInfo> Devices() {
    EnsureBackend();
    std::vector<DeviceInfo> out;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        DeviceInfo d;
        const char * name = ggml_backend_dev_name(dev);
        const char * desc = ggml_backend_dev_description(dev);
        ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
        const char * reg_name = reg ? ggml_backend_reg_name(reg) : nullptr;
        d.name = name ? name : "";
        d.description = desc ? desc : "";
        d.backend = friendly_backend(reg_name ? reg_name : d.name);
        d.type = dev_type_name(ggml_backend_dev_type(dev));
        ggml_backend_dev_memory(dev, &d.memoryFree, &d.memoryTotal);
        out.push_back(std::move(d));
    }
    return out;
}

std::string SystemInfo() {
    EnsureBackend();
    std::string s = "llama.cpp ";
    const char * v = llama_version();
    s += v ? v : "?";
    s += " | ";
    s += llama_print_system_info();
    return s;
}

}  // namespace embnative
