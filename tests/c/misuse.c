// Misuse of the llama.h C API from C: the documented error value, never a crash.
//
//   misuse MODEL.gguf [--reference]
//
// Run by tests/c_abi.rs against our libllama (under valgrind) and, with --reference, against the
// C++ reference build. The checks the reference itself cannot survive (NULL handles, which it
// dereferences; out-of-range ids it looks up with std::vector::at and lets the exception escape;
// seq ids it asserts on) run only against ours. Prints one line per check, "ok ..." or
// "FAIL ...", and exits 1 if any check failed. Functions our library does not export yet are
// listed ("missing ...") and their checks skipped: every llama.h function is a weak reference
// (tests/c/misuse_null.h), so the program links either way.
#define _GNU_SOURCE  // memmem
#include "llama.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct handles {
    struct llama_model * model;
    struct llama_context * ctx;
    const struct llama_vocab * vocab;
    struct llama_sampler * smpl;
    struct llama_batch_ext * bext;
    llama_memory_t mem;
    struct llama_adapter_lora * adapter;
};

static int n_failed = 0;
static int n_passed = 0;
static int n_missing = 0;
static int n_logs = 0;        // log lines seen since before_call()
static bool verbose_log = false;

static void count_log(enum ggml_log_level level, const char * text, void * user_data) {
    (void)user_data;
    if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) {
        n_logs++;
    }
    if (verbose_log) {
        fputs(text, stderr);
    }
}

static bool present(void (*fn)(void), const char * name) {
    if (fn == NULL) {
        printf("skip %s: not exported\n", name);
    }
    return fn != NULL;
}

static void check(const char * what, int ok, const char * got) {
    printf("%s %s -> %s\n", ok ? "ok" : "FAIL", what, got);
    if (ok) {
        n_passed++;
    } else {
        n_failed++;
    }
}

static void check_int(const char * what, int ok, long long got) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", got);
    check(what, ok, buf);
}

static void before_call(const char * what) {
    (void)what;
    n_logs = 0;
}

static void after_call(const char * what) {
    if (n_logs == 0) {
        printf("note %s: no error/warning log line\n", what);
    }
}

#include "misuse_null.h"

#define HAVE(fn) present((void (*)(void))(fn), #fn)

// Bytes [from, n) of buf still hold the fill byte.
static bool untouched(const char * buf, size_t from, size_t n, char fill) {
    for (size_t i = from; i < n; i++) {
        if (buf[i] != fill) {
            return false;
        }
    }
    return true;
}

static void buffer_checks(struct handles h) {
    const char * text = "Hello world, this is a small test";
    const int32_t text_len = (int32_t)strlen(text);
    char what[160];

    // tokenize: too small -> -(tokens needed), nothing written past n_tokens_max
    int32_t need = llama_tokenize(h.vocab, text, text_len, NULL, 0, true, false);
    check_int("tokenize(n_tokens_max=0) is -(count)", need < -2, need);
    int32_t n_tok = -need;
    llama_token tokens[64];
    for (int i = 0; i < 64; i++) {
        tokens[i] = 0x7eadbeef;
    }
    int32_t r = llama_tokenize(h.vocab, text, text_len, tokens, 2, true, false);
    snprintf(what, sizeof(what), "tokenize(n_tokens_max=2) == %d, tokens[2..] untouched", need);
    bool tail_ok = true;
    for (int i = 2; i < 64; i++) {
        tail_ok = tail_ok && tokens[i] == 0x7eadbeef;
    }
    check_int(what, r == need && tail_ok, r);
    r = llama_tokenize(h.vocab, text, text_len, tokens, 64, true, false);
    check_int("tokenize(n_tokens_max=64) == count", r == n_tok, r);

    // detokenize: too small -> -(bytes needed), nothing written past text_len_max
    char buf[256];
    int32_t need_text = llama_detokenize(h.vocab, tokens, n_tok, NULL, 0, false, false);
    check_int("detokenize(text_len_max=0) is -(bytes)", need_text < -4, need_text);
    memset(buf, 'x', sizeof(buf));
    r = llama_detokenize(h.vocab, tokens, n_tok, buf, 4, false, false);
    snprintf(what, sizeof(what), "detokenize(text_len_max=4) == %d, buf[4..] untouched", need_text);
    check_int(what, r == need_text && untouched(buf, 4, sizeof(buf), 'x'), r);
    r = llama_detokenize(h.vocab, tokens, n_tok, buf, sizeof(buf), false, false);
    check_int("detokenize(text_len_max=256) == bytes, the text inside",
              r == -need_text && memmem(buf, (size_t)r, text, (size_t)text_len) != NULL, r);

    // token_to_piece: too small -> -(bytes needed), nothing written past length
    llama_token world = tokens[2];  // a whole-word piece, " world" for SPM and BPE vocabularies
    int32_t piece_len = llama_token_to_piece(h.vocab, world, buf, sizeof(buf), 0, false);
    memset(buf, 'x', sizeof(buf));
    r = llama_token_to_piece(h.vocab, world, buf, 2, 0, false);
    snprintf(what, sizeof(what), "token_to_piece(length=2) == -%d, buf[2..] untouched", piece_len);
    check_int(what, piece_len > 2 && r == -piece_len && untouched(buf, 2, sizeof(buf), 'x'), r);
    r = llama_token_to_piece(h.vocab, world, buf, 0, 0, false);
    check_int("token_to_piece(length=0) is -(bytes)", r == -piece_len, r);

    // meta_val_str: snprintf semantics (full length returned, truncated and NUL-terminated);
    // missing key or index -> -1 with an empty string
    int32_t full = llama_model_meta_val_str(h.model, "general.architecture", buf, sizeof(buf));
    check_int("meta_val_str(general.architecture) == strlen", full > 3 && (size_t)full == strlen(buf), full);
    memset(buf, 'x', sizeof(buf));
    r = llama_model_meta_val_str(h.model, "general.architecture", buf, 4);
    check_int("meta_val_str(buf_size=4) == full length, 3 bytes + NUL, rest untouched",
              r == full && buf[3] == '\0' && strlen(buf) == 3 && untouched(buf, 4, sizeof(buf), 'x'), r);
    r = llama_model_meta_val_str(h.model, "general.architecture", NULL, 0);
    check_int("meta_val_str(NULL, 0) == full length", r == full, r);
    memset(buf, 'x', sizeof(buf));
    r = llama_model_meta_val_str(h.model, "no.such.key", buf, sizeof(buf));
    check_int("meta_val_str(missing key) == -1, empty string", r == -1 && buf[0] == '\0', r);
    int32_t n_meta = llama_model_meta_count(h.model);
    check_int("meta_count > 0", n_meta > 0, n_meta);
    r = llama_model_meta_val_str_by_index(h.model, n_meta, buf, sizeof(buf));
    check_int("meta_val_str_by_index(count) == -1", r == -1, r);
    r = llama_model_meta_val_str_by_index(h.model, -1, buf, sizeof(buf));
    check_int("meta_val_str_by_index(-1) == -1", r == -1, r);
    r = llama_model_meta_key_by_index(h.model, n_meta, buf, sizeof(buf));
    check_int("meta_key_by_index(count) == -1", r == -1, r);
    int32_t key_len = llama_model_meta_key_by_index(h.model, 0, buf, sizeof(buf));
    memset(buf, 'x', sizeof(buf));
    r = llama_model_meta_key_by_index(h.model, 0, buf, 2);
    check_int("meta_key_by_index(0, buf_size=2) == full length, 1 byte + NUL",
              key_len > 1 && r == key_len && buf[1] == '\0' && untouched(buf, 2, sizeof(buf), 'x'), r);
    r = llama_model_desc(h.model, buf, 4);
    check_int("model_desc(buf_size=4) > 3, NUL-terminated", r > 3 && strlen(buf) == 3, r);

    // chat_apply_template: returns the total length; copies at most `length` bytes
    struct llama_chat_message chat[2] = {{"system", "Be brief."}, {"user", "Hello there"}};
    int32_t total = llama_chat_apply_template("chatml", chat, 2, true, NULL, 0);
    check_int("chat_apply_template(chatml, NULL, 0) == total length", total > 20, total);
    memset(buf, 'x', sizeof(buf));
    r = llama_chat_apply_template("chatml", chat, 2, true, buf, 5);
    check_int("chat_apply_template(length=5) == total length, buf[5..] untouched",
              r == total && untouched(buf, 5, sizeof(buf), 'x'), r);
    r = llama_chat_apply_template("chatml", chat, 2, true, buf, sizeof(buf));
    check_int("chat_apply_template(length=256) == total length, starts with <|im_start|>",
              r == total && strncmp(buf, "<|im_start|>system\nBe brief.", 28) == 0, r);
    r = llama_chat_apply_template("no template of this name", chat, 2, true, buf, sizeof(buf));
    check_int("chat_apply_template(unknown template) == -1", r == -1, r);
}

static int32_t decode_one(struct llama_context * ctx, llama_token token, llama_pos pos, llama_seq_id seq) {
    struct llama_batch b = llama_batch_init(1, 0, 1);
    b.n_tokens = 1;
    b.token[0] = token;
    b.pos[0] = pos;
    b.n_seq_id[0] = 1;
    b.seq_id[0][0] = seq;
    b.logits[0] = 1;
    int32_t r = llama_decode(ctx, b);
    llama_batch_free(b);
    return r;
}

static void decode_checks(struct handles h, int32_t n_batch) {
    const int32_t n_vocab = llama_vocab_n_tokens(h.vocab);
    llama_token many[64];
    for (int i = 0; i < 64; i++) {
        many[i] = 100 + i;
    }
    llama_token bad = n_vocab;
    int32_t r = llama_decode(h.ctx, llama_batch_get_one(&bad, 1));
    check_int("decode(token = n_vocab) == -1", r == -1, r);
    bad = -7;
    r = llama_decode(h.ctx, llama_batch_get_one(&bad, 1));
    check_int("decode(token = -7) == -1", r == -1, r);
    r = llama_decode(h.ctx, llama_batch_get_one(many, 0));
    check_int("decode(n_tokens = 0) == -1", r == -1, r);

    struct llama_batch nothing = {0};
    nothing.n_tokens = 1;
    r = llama_decode(h.ctx, nothing);
    check_int("decode(batch with token = embd = NULL) == -1", r == -1, r);

    r = decode_one(h.ctx, 100, 0, 1);
    check_int("decode(seq_id = n_seq_max) == -1", r == -1, r);
    r = decode_one(h.ctx, 100, 0, -1);
    check_int("decode(seq_id = -1) == -1", r == -1, r);

    r = llama_decode(h.ctx, llama_batch_get_one(many, 3));
    check_int("decode(3 valid tokens) == 0", r == 0, r);
    r = decode_one(h.ctx, 100, 10, 0);
    check_int("decode(pos 10 after pos 2: gap) == -1", r == -1, r);
    r = decode_one(h.ctx, 100, 1, 0);
    check_int("decode(pos 1 after pos 2: goes back) == -1", r == -1, r);
    r = decode_one(h.ctx, 100, 3, 0);
    check_int("decode(pos 3, the next one) == 0: the context survived", r == 0, r);
    llama_pos pos_max = llama_memory_seq_pos_max(h.mem, 0);
    check_int("memory_seq_pos_max(0) == 3", pos_max == 3, pos_max);

    float * logits = llama_get_logits_ith(h.ctx, -1);
    check("get_logits_ith(-1) after decode", logits != NULL, logits ? "non-NULL" : "NULL");
    logits = llama_get_logits_ith(h.ctx, 1);
    check("get_logits_ith(1) with one output == NULL", logits == NULL, logits ? "non-NULL" : "NULL");
    logits = llama_get_logits_ith(h.ctx, -2);
    check("get_logits_ith(-2) with one output == NULL", logits == NULL, logits ? "non-NULL" : "NULL");
    logits = llama_get_logits_ith(h.ctx, 1 << 30);
    check("get_logits_ith(2^30) == NULL", logits == NULL, logits ? "non-NULL" : "NULL");
    logits = llama_get_logits_ith(h.ctx, -(1 << 30));
    check("get_logits_ith(-2^30) == NULL", logits == NULL, logits ? "non-NULL" : "NULL");

    if (h.bext != NULL && HAVE(llama_batch_ext_add_token)) {
        // llama.h: -1 batch is full, -2 invalid token, -3 invalid sequence id
        r = llama_batch_ext_add_token(h.bext, 0, LLAMA_TOKEN_NULL);
        check_int("batch_ext_add_token(LLAMA_TOKEN_NULL) == -2", r == -2, r);
        r = llama_batch_ext_add_token(h.bext, 1, 100);
        check_int("batch_ext_add_token(seq_id = n_seq_max) == -3", r == -3, r);
        r = llama_batch_ext_add_token(h.bext, -1, 100);
        check_int("batch_ext_add_token(seq_id = -1) == -3", r == -3, r);
        // The reference keeps the slot a -2 call added (as does ours): start from empty.
        llama_batch_ext_clear(h.bext);
        int32_t last = -100;
        for (int32_t i = 0; i < n_batch; i++) {
            last = llama_batch_ext_add_token(h.bext, 0, 100 + i);
        }
        check_int("batch_ext_add_token x n_batch: last index == n_batch - 1", last == n_batch - 1, last);
        r = llama_batch_ext_add_token(h.bext, 0, 100);
        check_int("batch_ext_add_token(one past n_batch) == -1 (full)", r == -1, r);
        bool b = llama_batch_ext_set_output_logits(h.bext, n_batch, true);
        check("batch_ext_set_output_logits(idx = n_tokens) == false", !b, b ? "true" : "false");
        b = llama_batch_ext_set_output_logits(h.bext, -1, true);
        check("batch_ext_set_output_logits(idx = -1) == false", !b, b ? "true" : "false");
        llama_pos pos = 0;
        b = llama_batch_ext_set_pos(h.bext, n_batch, &pos);
        check("batch_ext_set_pos(idx = n_tokens) == false", !b, b ? "true" : "false");
        b = llama_batch_ext_add_seq(h.bext, 0, 1);
        check("batch_ext_add_seq(seq_id = n_seq_max) == false", !b, b ? "true" : "false");
        b = llama_batch_ext_add_seq(h.bext, n_batch, 0);
        check("batch_ext_add_seq(idx = n_tokens) == false", !b, b ? "true" : "false");
        llama_batch_ext_clear(h.bext);
        r = llama_batch_ext_add_token(h.bext, 0, 100);
        check_int("batch_ext_add_token after clear == 0", r == 0, r);
        llama_batch_ext_clear(h.bext);

        // llama_process: the same errors as llama_decode
        llama_memory_clear(h.mem, true);
        r = llama_process(h.ctx, LLAMA_PROCESS_TYPE_DECODE, h.bext);
        check_int("process(empty batch) == -1", r == -1, r);
        llama_pos pos0 = 0;
        llama_batch_ext_add_token(h.bext, 0, n_vocab);
        llama_batch_ext_set_pos(h.bext, 0, &pos0);
        r = llama_process(h.ctx, LLAMA_PROCESS_TYPE_DECODE, h.bext);
        check_int("process(token = n_vocab) == -1", r == -1, r);
        llama_batch_ext_clear(h.bext);
        llama_batch_ext_add_token(h.bext, 0, 100);
        llama_batch_ext_set_pos(h.bext, 0, &pos0);
        r = llama_process(h.ctx, LLAMA_PROCESS_TYPE_DECODE, h.bext);
        check_int("process(pos 0 on empty memory) == 0", r == 0, r);
        r = llama_process(h.ctx, LLAMA_PROCESS_TYPE_DECODE, h.bext);
        check_int("process(pos 0 again) == -1", r == -1, r);
        r = llama_process(h.ctx, (enum llama_process_type)7, h.bext);
        check_int("process(type 7) == -1", r == -1, r);
        llama_batch_ext_clear(h.bext);
        llama_pos pos1 = 1;
        llama_batch_ext_add_token(h.bext, 0, 101);
        llama_batch_ext_set_pos(h.bext, 0, &pos1);
        r = llama_process(h.ctx, LLAMA_PROCESS_TYPE_DECODE, h.bext);
        check_int("process(pos 1, the next one) == 0", r == 0, r);
        llama_batch_ext_clear(h.bext);
    }
}

// Checks the reference cannot run: it dereferences NULL handles, throws std::out_of_range through
// the C boundary for out-of-range token ids in vocabulary queries, and asserts on bad seq ids.
// It also asserts (aborts) on n_tokens > n_batch.
static void ours_only_checks(struct handles h, int32_t n_batch) {
    const int32_t n_vocab = llama_vocab_n_tokens(h.vocab);
    char buf[64];
    llama_token many[64];
    for (int i = 0; i < 64; i++) {
        many[i] = 100 + i;
    }
    int32_t r = llama_decode(h.ctx, llama_batch_get_one(many, n_batch + 1));
    check_int("decode(n_tokens = n_batch + 1) == -1", r == -1, r);
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model * m = llama_model_load_from_file(NULL, mp);
    check("model_load_from_file(NULL path) == NULL", m == NULL, m ? "non-NULL" : "NULL");
    if (m) {
        llama_model_free(m);
    }
    const char * t = llama_vocab_get_text(h.vocab, n_vocab);
    check("vocab_get_text(n_vocab) is NULL or empty", t == NULL || t[0] == '\0', t ? t : "NULL");
    t = llama_vocab_get_text(h.vocab, -1);
    check("vocab_get_text(-1) is NULL or empty", t == NULL || t[0] == '\0', t ? t : "NULL");
    bool b = llama_vocab_is_eog(h.vocab, n_vocab);
    check("vocab_is_eog(n_vocab) == false", !b, b ? "true" : "false");
    memset(buf, 'x', sizeof(buf));
    r = llama_token_to_piece(h.vocab, n_vocab, buf, sizeof(buf), 0, false);
    check_int("token_to_piece(n_vocab) <= 0, nothing written", r <= 0 && untouched(buf, 0, sizeof(buf), 'x'), r);
    r = llama_tokenize(h.vocab, "abc", 3, NULL, -5, false, false);
    check_int("tokenize(n_tokens_max = -5) < 0", r < 0, r);
    llama_token ok_tokens[2] = {100, n_vocab};
    r = llama_detokenize(h.vocab, ok_tokens, 2, buf, sizeof(buf), false, false);
    check_int("detokenize(with token n_vocab) <= 0", r <= 0, r);
    b = llama_memory_seq_rm(h.mem, 5, 0, -1);
    check("memory_seq_rm(seq_id = 5 >= n_seq_max) == false", !b, b ? "true" : "false");
    llama_token s = llama_sampler_sample(h.smpl, h.ctx, 1 << 20);
    check_int("sampler_sample(idx = 2^20) == LLAMA_TOKEN_NULL", s == LLAMA_TOKEN_NULL, s);
    struct llama_batch big = llama_batch_init(-1, 0, 1);
    check_int("batch_init(n_tokens = -1): no crash", 1, big.n_tokens);
    llama_batch_free(big);
    r = llama_chat_apply_template("chatml", NULL, 1, true, buf, sizeof(buf));
    check_int("chat_apply_template(chat = NULL, n_msg = 1) < 0", r < 0, r);
}

int main(int argc, char ** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [--reference]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);  // a crash still shows the last check reached
    const bool reference = argc > 2 && strcmp(argv[2], "--reference") == 0;
    verbose_log = getenv("MISUSE_VERBOSE") != NULL;
    llama_log_set(count_log, NULL);
    llama_backend_init();

    if (!reference) {
        for (size_t i = 0; i < sizeof(all_functions) / sizeof(all_functions[0]); i++) {
            if (all_functions[i].fn == NULL) {
                printf("missing %s\n", all_functions[i].name);
                n_missing++;
            }
        }
    }

    struct handles h = {0};
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model * nothing = llama_model_load_from_file("/nonexistent/model.gguf", mp);
    check("model_load_from_file(nonexistent) == NULL", nothing == NULL, nothing ? "non-NULL" : "NULL");
    h.model = llama_model_load_from_file(argv[1], mp);
    if (h.model == NULL) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    h.vocab = llama_model_get_vocab(h.model);
    struct llama_context_params cp = llama_context_default_params();
    const int32_t n_batch = 8;
    cp.n_ctx = 64;
    cp.n_batch = (uint32_t)n_batch;
    cp.n_ubatch = (uint32_t)n_batch;
    cp.n_seq_max = 1;
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    h.ctx = llama_init_from_model(h.model, cp);
    if (h.ctx == NULL) {
        fprintf(stderr, "cannot create a context\n");
        return 1;
    }
    h.mem = llama_get_memory(h.ctx);
    h.smpl = llama_sampler_chain_init(llama_sampler_chain_default_params());
    llama_sampler_chain_add(h.smpl, llama_sampler_init_greedy());
    if (HAVE(llama_batch_ext_init)) {
        h.bext = llama_batch_ext_init(h.ctx);
    }

    buffer_checks(h);
    decode_checks(h, n_batch);
    if (!reference) {
        ours_only_checks(h, n_batch);
        null_handle_calls(h);
    }

    if (h.bext != NULL) {
        llama_batch_ext_free(h.bext);
    }
    llama_sampler_free(h.smpl);
    llama_free(h.ctx);
    llama_model_free(h.model);
    llama_backend_free();
    printf("misuse: %d passed, %d failed, %d functions not exported\n", n_passed, n_failed, n_missing);
    return n_failed ? 1 : 0;
}
