// A minimal llama.h client, built by tests/c_abi.rs against an installed tree through CMake
// (tests/c/cmake_consumer) and through pkg-config, and against the C++ reference: loads a
// model, tokenizes a prompt, decodes it and prints the prompt's ids and the greedy next token.
//
//   consumer MODEL.gguf [PROMPT]
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet_log(enum ggml_log_level level, const char * text, void * user_data) {
    (void)user_data;
    if (level >= GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

int main(int argc, char ** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [PROMPT]\n", argv[0]);
        return 2;
    }
    const char * prompt = argc > 2 ? argv[2] : "Hello world";
    llama_log_set(quiet_log, NULL);
    llama_backend_init();

    struct llama_model_params mparams = llama_model_default_params();
    struct llama_model * model = llama_model_load_from_file(argv[1], mparams);
    if (model == NULL) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const struct llama_vocab * vocab = llama_model_get_vocab(model);

    int32_t n_prompt = -llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), NULL, 0, true, false);
    if (n_prompt <= 0) {
        fprintf(stderr, "tokenize: no tokens (%d)\n", n_prompt);
        return 1;
    }
    llama_token * tokens = malloc(sizeof(llama_token) * (size_t)n_prompt);
    if (llama_tokenize(vocab, prompt, (int32_t)strlen(prompt), tokens, n_prompt, true, false) != n_prompt) {
        fprintf(stderr, "tokenize: count changed\n");
        return 1;
    }

    struct llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 64;
    cparams.n_batch = 64;
    cparams.n_threads = 1;
    cparams.n_threads_batch = 1;
    cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    struct llama_context * ctx = llama_init_from_model(model, cparams);
    if (ctx == NULL) {
        fprintf(stderr, "cannot create a context\n");
        return 1;
    }
    int32_t ret = llama_decode(ctx, llama_batch_get_one(tokens, n_prompt));
    if (ret != 0) {
        fprintf(stderr, "decode failed: %d\n", ret);
        return 1;
    }
    const float * logits = llama_get_logits_ith(ctx, -1);
    int32_t n_vocab = llama_vocab_n_tokens(vocab);
    int32_t best = 0;
    for (int32_t i = 1; i < n_vocab; i++) {
        if (logits[i] > logits[best]) {
            best = i;
        }
    }
    printf("prompt:");
    for (int32_t i = 0; i < n_prompt; i++) {
        printf(" %d", tokens[i]);
    }
    char piece[64];
    int32_t n_piece = llama_token_to_piece(vocab, best, piece, sizeof(piece) - 1, 0, false);
    piece[n_piece > 0 ? n_piece : 0] = '\0';
    printf("\nn_vocab: %d\nargmax: %d '%s'\n", n_vocab, best, piece);

    free(tokens);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
