// Force-included (-include) ahead of llama.cpp's examples/simple-chat/simple-chat.cpp by
// tests/c_abi.rs. simple-chat ends its sampler chain with llama_sampler_init_dist(
// LLAMA_DEFAULT_SEED), a random seed, so two runs never agree; after llama.h is declared this
// turns that call into the greedy sampler (min-p and temperature before it keep the argmax), so
// our build and the reference build can be compared token for token. The source is not touched.
#include "llama.h"

#define llama_sampler_init_dist(seed) ((void)(seed), llama_sampler_init_greedy())
