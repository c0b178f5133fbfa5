#ifndef GGML_OPT_H
#define GGML_OPT_H

/* Generated from src/capi by tests/capi_header.rs (cbindgen); do not edit.
   Regenerate: BITNET_BLESS=1 cargo test --test capi_header */

#include "ggml.h"
#include "ggml-backend.h"


enum ggml_opt_optimizer_type {
  GGML_OPT_OPTIMIZER_TYPE_ADAMW,
  GGML_OPT_OPTIMIZER_TYPE_SGD,
  GGML_OPT_OPTIMIZER_TYPE_COUNT,
};

struct ggml_opt_context;

struct ggml_opt_dataset;

struct ggml_opt_result;

typedef struct ggml_opt_dataset *ggml_opt_dataset_t;

typedef struct ggml_opt_context *ggml_opt_context_t;

typedef struct ggml_opt_result *ggml_opt_result_t;

/**
 * AdamW parameters (an anonymous struct inside `ggml_opt_optimizer_params` in the reference;
 * same fields and layout).
 */
struct ggml_opt_adamw_params {
  float alpha;
  float beta1;
  float beta2;
  float eps;
  float wd;
};

/**
 * SGD parameters (anonymous in the reference, same layout).
 */
struct ggml_opt_sgd_params {
  float alpha;
  float wd;
};

struct ggml_opt_optimizer_params {
  struct ggml_opt_adamw_params adamw;
  struct ggml_opt_sgd_params sgd;
};

typedef struct ggml_opt_optimizer_params (*ggml_opt_get_optimizer_params)(void *userdata);

typedef void (*ggml_opt_epoch_callback)(bool train,
                                        ggml_opt_context_t opt_ctx,
                                        ggml_opt_dataset_t dataset,
                                        ggml_opt_result_t result,
                                        int64_t ibatch,
                                        int64_t ibatch_max,
                                        int64_t t_start_us);

#endif  /* GGML_OPT_H */
