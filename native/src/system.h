// Process-wide llama.cpp setup and host/device queries.
#pragma once

#include <string>
#include <vector>

namespace embnative {

/** llama_backend_init once, and route llama.cpp/ggml logs (no-op unless EMBEDDING_SERVER_LLAMA_LOG=1). */
void EnsureBackend();

/** Enables/disables forwarding llama.cpp logs to stderr at runtime. */
void SetLogging(bool enabled);

/**
 * Collects llama.cpp error log lines emitted on the calling thread between Begin and End, so
 * failures can carry llama.cpp's own explanation (e.g. "unknown model architecture").
 */
void BeginErrorCapture();
std::string EndErrorCapture();

/** Physical CPU cores (performance cores on Apple Silicon), at least 1. */
int PhysicalCores();

struct DeviceInfo {
    std::string name;         // ggml_backend_dev_name, e.g. "Metal", "CUDA0", "CPU"
    std::string description;  // e.g. "Apple M2 Max"
    std::string backend;      // registry name, e.g. "Metal", "CUDA", "Vulkan", "CPU"
    std::string type;         // "cpu" | "gpu" | "igpu" | "accel" | "other"
    size_t memoryFree = 0;
    size_t memoryTotal = 0;
};

std::vector<DeviceInfo> Devices();

/** llama_print_system_info() plus the llama.cpp version. */
std::string SystemInfo();

}  // namespace embnative
