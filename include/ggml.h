#ifndef GGML_H
#define GGML_H

/* Generated from src/capi by tests/capi_header.rs (cbindgen); do not edit.
   Regenerate: BITNET_BLESS=1 cargo test --test capi_header */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
#    define GGML_NORETURN [[noreturn]]
#elif defined(_MSC_VER)
#    define GGML_NORETURN __declspec(noreturn)
#else
#    define GGML_NORETURN _Noreturn
#endif

#define GGML_UNUSED(x) (void)(x)
#define GGML_ABORT(...) ggml_abort(__FILE__, __LINE__, __VA_ARGS__)
#define GGML_ASSERT(x) if (!(x)) GGML_ABORT("GGML_ASSERT(%s) failed", #x)

#ifdef __cplusplus
extern "C" {
#endif
/* Prints "file:line: fmt" to stderr and aborts (format arguments are not expanded). */
GGML_NORETURN void ggml_abort(const char * file, int line, const char * fmt, ...);
#ifdef __cplusplus
}
#endif


#define GGML_DEFAULT_N_THREADS 4

#define GGML_ROPE_TYPE_NORMAL 0

#define GGML_ROPE_TYPE_NEOX 2

#define GGML_ROPE_TYPE_MROPE 8

#define GGML_ROPE_TYPE_VISION 24

#define GGML_ROPE_TYPE_IMROPE 40

/**
 * Tensor element types (header only; values travel as `enum_ggml_type`, a plain int).
 */
enum ggml_type {
  GGML_TYPE_F32 = 0,
  GGML_TYPE_F16 = 1,
  GGML_TYPE_Q4_0 = 2,
  GGML_TYPE_Q4_1 = 3,
  GGML_TYPE_Q5_0 = 6,
  GGML_TYPE_Q5_1 = 7,
  GGML_TYPE_Q8_0 = 8,
  GGML_TYPE_Q8_1 = 9,
  GGML_TYPE_Q2_K = 10,
  GGML_TYPE_Q3_K = 11,
  GGML_TYPE_Q4_K = 12,
  GGML_TYPE_Q5_K = 13,
  GGML_TYPE_Q6_K = 14,
  GGML_TYPE_Q8_K = 15,
  GGML_TYPE_IQ2_XXS = 16,
  GGML_TYPE_IQ2_XS = 17,
  GGML_TYPE_IQ3_XXS = 18,
  GGML_TYPE_IQ1_S = 19,
  GGML_TYPE_IQ4_NL = 20,
  GGML_TYPE_IQ3_S = 21,
  GGML_TYPE_IQ2_S = 22,
  GGML_TYPE_IQ4_XS = 23,
  GGML_TYPE_I8 = 24,
  GGML_TYPE_I16 = 25,
  GGML_TYPE_I32 = 26,
  GGML_TYPE_I64 = 27,
  GGML_TYPE_F64 = 28,
  GGML_TYPE_IQ1_M = 29,
  GGML_TYPE_BF16 = 30,
  GGML_TYPE_TQ1_0 = 34,
  GGML_TYPE_TQ2_0 = 35,
  GGML_TYPE_MXFP4 = 39,
  GGML_TYPE_NVFP4 = 40,
  GGML_TYPE_Q1_0 = 41,
  GGML_TYPE_Q2_0 = 42,
  GGML_TYPE_COUNT = 43,
};

enum ggml_log_level {
  GGML_LOG_LEVEL_NONE = 0,
  GGML_LOG_LEVEL_DEBUG = 1,
  GGML_LOG_LEVEL_INFO = 2,
  GGML_LOG_LEVEL_WARN = 3,
  GGML_LOG_LEVEL_ERROR = 4,
  GGML_LOG_LEVEL_CONT = 5,
};

struct ggml_cgraph;

struct ggml_context;

/**
 * A tensor of the ggml graph library: we have none; only pointers to it appear in signatures.
 */
struct ggml_tensor;

struct ggml_threadpool;

typedef struct ggml_threadpool *ggml_threadpool_t;

typedef void (*ggml_log_callback)(enum ggml_log_level level, const char *text, void *user_data);

typedef bool (*ggml_abort_callback)(void *data);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Microseconds on CLOCK_MONOTONIC, the same clock as ggml's own `ggml_time_us`.
 */
int64_t ggml_time_us(void);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* GGML_H */
