#ifndef GGUF_H
#define GGUF_H

/* Generated from src/capi by tests/capi_header.rs (cbindgen); do not edit.
   Regenerate: BITNET_BLESS=1 cargo test --test capi_header */

#include "ggml.h"


struct gguf_context;

#endif  /* GGUF_H */
