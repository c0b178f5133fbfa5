/* Our libllama.so and llama.cpp's real libggml-base.so in one process, as in llama.cpp's tools
 * run on our library: both export ggml_time_us and ggml_abort.
 *
 *   ggml_coexist          prints whether our clock (llama_time_us, the same function as our
 *                         ggml_time_us) and the real ggml's ggml_time_us agree
 *   ggml_coexist abort    registers an abort callback with the real ggml (when loaded), then
 *                         calls ggml_abort with a format and arguments
 *
 * Whichever copy a call binds to (it depends on the link order), the clocks must agree and the
 * abort must reach the real ggml's callback with the formatted message. Without the real ggml
 * (linked against our library alone) our ggml_abort prints the formatted message itself. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ggml.h's declarations, written out: our include/ggml.h is reduced to what llama.h needs. */
int64_t ggml_time_us(void);
int64_t llama_time_us(void);
void ggml_abort(const char * file, int line, const char * fmt, ...);
typedef void (*abort_callback)(const char * message);
typedef abort_callback (*set_abort_callback_fn)(abort_callback);
typedef int64_t (*time_fn)(void);

static void on_abort(const char * message) {
    fprintf(stderr, "abort callback: %s\n", message);
    fflush(stderr);
}

int main(int argc, char ** argv) {
    void * ours = dlopen("libllama.so.0", RTLD_NOW | RTLD_NOLOAD);
    void * ggml = dlopen("libggml-base.so.0", RTLD_NOW | RTLD_NOLOAD);
    if (ours == NULL) {
        fprintf(stderr, "libllama.so.0 is not loaded\n");
        return 2;
    }
    if (ggml != NULL) {
        /* Ours: llama_time_us reads the clock our ggml_time_us reads (one Rust function).
         * The real ggml's: looked up on its handle, checked to lie in libggml-base. */
        time_fn b = (time_fn) dlsym(ggml, "ggml_time_us");
        Dl_info info;
        if (b == NULL || dladdr((void *) b, &info) == 0 || info.dli_fname == NULL ||
            strstr(info.dli_fname, "libggml-base") == NULL) {
            fprintf(stderr, "ggml_time_us of libggml-base not found\n");
            return 2;
        }
        int64_t t0 = llama_time_us();
        int64_t t1 = b();
        int64_t t2 = llama_time_us();
        int64_t t3 = ggml_time_us(); /* whichever copy the link order bound */
        int64_t t4 = b();
        int agree = t0 <= t1 && t1 <= t2 && t2 <= t3 && t3 <= t4 && t4 - t0 < 1000000;
        printf("clocks %s\n", agree ? "agree" : "differ");
        if (!agree) {
            fprintf(stderr, "%lld %lld %lld %lld %lld\n", (long long) t0, (long long) t1,
                    (long long) t2, (long long) t3, (long long) t4);
        }
    } else {
        printf("no ggml\n");
    }
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "abort") == 0) {
        if (ggml != NULL) {
            set_abort_callback_fn set = (set_abort_callback_fn) dlsym(ggml, "ggml_set_abort_callback");
            if (set == NULL) {
                fprintf(stderr, "no ggml_set_abort_callback\n");
                return 2;
            }
            set(on_abort);
        }
        ggml_abort("coexist.c", 42, "%d apples and %s", 3, "pears");
    }
    return 0;
}
