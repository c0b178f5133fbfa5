#ifndef GGML_CPU_H
#define GGML_CPU_H

/* Generated from src/capi by tests/capi_header.rs (cbindgen); do not edit.
   Regenerate: BITNET_BLESS=1 cargo test --test capi_header */

#include "ggml.h"


enum ggml_numa_strategy {
  GGML_NUMA_STRATEGY_DISABLED = 0,
  GGML_NUMA_STRATEGY_DISTRIBUTE = 1,
  GGML_NUMA_STRATEGY_ISOLATE = 2,
  GGML_NUMA_STRATEGY_NUMACTL = 3,
  GGML_NUMA_STRATEGY_MIRROR = 4,
  GGML_NUMA_STRATEGY_COUNT = 5,
};

#endif  /* GGML_CPU_H */
