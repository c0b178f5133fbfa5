#ifndef GGML_BACKEND_H
#define GGML_BACKEND_H

/* Generated from src/capi by tests/capi_header.rs (cbindgen); do not edit.
   Regenerate: BITNET_BLESS=1 cargo test --test capi_header */

#include "ggml.h"


struct ggml_backend;

struct ggml_backend_buffer;

struct ggml_backend_buffer_type;

struct ggml_backend_device;

struct ggml_backend_sched;

typedef struct ggml_backend_buffer_type *ggml_backend_buffer_type_t;

typedef struct ggml_backend_buffer *ggml_backend_buffer_t;

typedef struct ggml_backend *ggml_backend_t;

typedef struct ggml_backend_device *ggml_backend_dev_t;

typedef struct ggml_backend_sched *ggml_backend_sched_t;

typedef bool (*ggml_backend_sched_eval_callback)(struct ggml_tensor *t, bool ask, void *user_data);

#endif  /* GGML_BACKEND_H */
