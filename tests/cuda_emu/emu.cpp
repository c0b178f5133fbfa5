// The kernels of src/kernels/cuda/kernels.cu built for the host (see emu.h), behind one C entry
// point with cuLaunchKernel's calling convention: a kernel name, the launch shape and an array
// of pointers to the argument values.
//
//   g++ -std=c++17 -O2 -fPIC -shared -ffp-contract=off -Isrc/kernels/cuda -o libemu.so tests/cuda_emu/emu.cpp

#include "emu.h"

#include "kernels.cu"

namespace {

template <class... A, size_t... I>
void call_impl(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

template <class... A>
void call(void (*f)(A...), void** args) {
    call_impl(f, args, std::index_sequence_for<A...>{});
}

struct Entry {
    const char* name;
    void (*invoke)(void**);
};

#define KERNEL(name) {#name, [](void** a) { call(name, a); }}

const Entry KERNELS[] = {
    KERNEL(embed_rows), KERNEL(norm_act), KERNEL(tern_gemv), KERNEL(tern_gemm), KERNEL(flt_gemv),
    KERNEL(flt_i8_gemv), KERNEL(rope_kv), KERNEL(attention), KERNEL(read_sum),
    KERNEL(q8_quant), KERNEL(q8_head),
};

} // namespace

// 0: ran; 1: unknown kernel; 2: bad shape; 3: deadlock (a barrier some threads never reach).
extern "C" int emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                          unsigned bz, void** args) {
    const Entry* e = nullptr;
    for (const Entry& k : KERNELS)
        if (strcmp(k.name, name) == 0) e = &k;
    if (!e) return 1;
    unsigned n = bx * by * bz;
    if (n == 0 || n > 1024 || gx == 0 || gy == 0 || gz == 0) return 2;
    emu::B.bdim = uint3{bx, by, bz};
    emu::B.gdim = uint3{gx, gy, gz};
    emu::B.nthreads = n;
    for (unsigned z = 0; z < gz; z++)
        for (unsigned y = 0; y < gy; y++)
            for (unsigned x = 0; x < gx; x++) {
                emu::B.bidx = uint3{x, y, z};
                if (!emu::run_block(e->invoke, args)) {
                    fprintf(stderr, "emu: %s deadlocked in block (%u, %u, %u)\n", name, x, y, z);
                    return 3;
                }
            }
    return 0;
}
