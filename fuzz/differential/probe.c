// Loads one GGUF file through llama.h and decodes two tokens; prints one line saying how far it
// got. Built once against include/llama.h, run against either library by LD_LIBRARY_PATH (ours
// or the reference's libllama.so.0), one process per file so a crash ends only this probe.
//
//   probe FILE   ->  "load=fail" | "load=ok ctx=fail" | "load=ok ctx=ok decode=RC finite=0|1"
// Error and warning log lines go to stderr.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "llama.h"

static void log_errors(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) {
        fputs(text, stderr);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: probe FILE\n");
        return 2;
    }
    llama_log_set(log_errors, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        printf("load=fail\n");
        return 0;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int n_vocab = llama_vocab_n_tokens(vocab);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 8;
    cp.n_ubatch = 8;
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        printf("load=ok ctx=fail\n");
        llama_model_free(model);
        return 0;
    }
    llama_token bos = llama_vocab_bos(vocab);
    llama_token tokens[2] = {bos >= 0 && bos < n_vocab ? bos : 0, n_vocab > 1 ? 1 : 0};
    int rc = llama_decode(ctx, llama_batch_get_one(tokens, 2));
    int finite = 0;
    if (rc == 0) {
        const float *logits = llama_get_logits_ith(ctx, -1);
        finite = logits != NULL;
        for (int i = 0; finite && i < n_vocab; i++) {
            finite = isfinite(logits[i]);
        }
    }
    printf("load=ok ctx=ok decode=%d finite=%d\n", rc, finite);
    fflush(stdout);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
