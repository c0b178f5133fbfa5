// The two exports of src/capi/ext.rs that Rust cannot write itself, compiled by build.rs:
//
// - llama_get_memory_breakdown returns a std::map by value (llama-ext.h of the pinned llama.cpp):
//   the caller's libstdc++ map is built here, in C++, from the sizes Rust reports.
// - ggml_abort is variadic: the message is formatted here, then handed to the process's real
//   ggml_abort when a libggml is loaded after us (llama.cpp's tools), else printed.
//
// Both are reached through a jump from an exported Rust function of the same signature
// (`tail_jump!` in ext.rs), because the cdylib exports only Rust items; the functions below stay
// hidden. Every name here is ours; the map's key and value types are laid out exactly as
// llama-ext.h declares them (a pointer to an opaque ggml type; three size_t).

#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <map>

#include <dlfcn.h>

struct ggml_backend_buffer_type;
struct llama_context;

namespace {

// llama-ext.h's `llama_memory_breakdown_data`: bytes of one buffer type.
struct memory_bytes {
    size_t model = 0;
    size_t context = 0;
    size_t compute = 0;
};

using memory_breakdown = std::map<ggml_backend_buffer_type *, memory_bytes>;

}  // namespace

extern "C" {

// src/capi/ext.rs: the model's weight bytes, the KV cache's and the activation buffers' of a
// context; false for a NULL context.
bool bitnet_ext_memory_sizes(const llama_context * ctx, size_t * model, size_t * context,
                             size_t * compute);

// Jumped to from the exported `llama_get_memory_breakdown(const llama_context *)`.
// Everything we allocate lives in host memory, so everything is reported under the process's
// real ggml CPU buffer type (what the reference's CPU build reports it under); a process without
// a libggml (a program linked against our library alone) has no buffer type to name: empty map.
__attribute__((visibility("hidden"))) memory_breakdown
bitnet_ext_memory_breakdown(const llama_context * ctx) noexcept {
    memory_breakdown out;
    using buft_fn = ggml_backend_buffer_type * (*)();
    auto cpu_buft = reinterpret_cast<buft_fn>(dlsym(RTLD_DEFAULT, "ggml_backend_cpu_buffer_type"));
    memory_bytes bytes;
    if (cpu_buft == nullptr ||
        !bitnet_ext_memory_sizes(ctx, &bytes.model, &bytes.context, &bytes.compute)) {
        return out;
    }
    ggml_backend_buffer_type * key = cpu_buft();
    if (key == nullptr) {
        return out;
    }
    try {
        out.emplace(key, bytes);
    } catch (...) {
        // Out of memory for one map node: the caller gets the empty breakdown.
    }
    return out;
}

// Jumped to from the exported `ggml_abort(const char * file, int line, const char * fmt, ...)`.
__attribute__((visibility("hidden"), noreturn)) void
bitnet_ext_ggml_abort(const char * file, int line, const char * fmt, ...) {
    char message[2048];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt ? fmt : "?", args);
    va_end(args);
    // The next ggml_abort in the lookup order after this library: libggml-base's, when a program
    // of llama.cpp loaded it (it then runs its abort callback and prints its backtrace).
    using abort_fn = void (*)(const char *, int, const char *, ...);
    auto next = reinterpret_cast<abort_fn>(dlsym(RTLD_NEXT, "ggml_abort"));
    if (next != nullptr) {
        next(file ? file : "?", line, "%s", message);
    }
    fflush(stdout);
    fprintf(stderr, "%s:%d: %s\n", file ? file : "?", line, message);
    abort();
}

}  // extern "C"
