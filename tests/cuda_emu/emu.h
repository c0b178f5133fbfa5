// A host emulation of the small part of CUDA that src/kernels/cuda/kernels.cu uses, so that g++
// compiles the very same kernels and the tests run them without a GPU.
//
// Blocks of a launch run one after another; the threads of a block run as fibers (ucontext) on
// one OS thread, switched only at __syncthreads, __syncwarp and warp shuffles, which are
// barriers over the block or the warp. Exited threads leave the barriers' counts, as on the
// hardware. `__shared__` variables are plain statics (one block runs at a time), atomics are
// plain read-modify-writes (one fiber runs at a time). Floating point follows the GPU's
// kernels compiled with --fmad=false: plain IEEE float operations (build with
// -ffp-contract=off), fmaf where the kernel asks for it, exp in double.

#pragma once
#define BITNET_EMU 1

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <ucontext.h>
#include <utility>
#include <vector>

typedef unsigned long long u64;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define DEV inline
#define FULL_MASK 0xffffffffu

struct uint3 {
    unsigned x, y, z;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};

namespace emu {

// Context switches: on x86-64 a minimal switch of the callee-saved registers and the stack
// pointer (no signal-mask system call, unlike swapcontext); elsewhere ucontext.
#if defined(__x86_64__)
#define EMU_FAST_SWITCH 1
extern "C" void emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");
#endif

struct Fiber {
#if EMU_FAST_SWITCH
    void* sp;
#else
    ucontext_t ctx;
#endif
    unsigned tid;
    bool done;
};

// The block being run: its shape, fibers and barriers.
struct Block {
    uint3 bdim, gdim, bidx;
    unsigned nthreads = 0;
    std::vector<Fiber> fibers;
    Fiber* cur = nullptr;
#if EMU_FAST_SWITCH
    void* sched_sp = nullptr;
#else
    ucontext_t sched;
#endif
    void (*entry)(void**) = nullptr;
    void** args = nullptr;
    unsigned alive = 0;
    unsigned bar_gen = 0, bar_arrived = 0;
    unsigned walive[32], wgen[32], warrived[32];
    u64 wbuf[32][32];
    u64 progress = 0; // arrivals, releases and exits: a sweep without any is a deadlock
};

inline Block B;
inline std::vector<char*> stacks;
constexpr size_t STACK = 256 * 1024;

#if EMU_FAST_SWITCH
inline void yield() { emu_switch(&B.cur->sp, B.sched_sp); }
#else
inline void yield() { swapcontext(&B.cur->ctx, &B.sched); }
#endif

inline uint3 thread_idx() {
    unsigned t = B.cur->tid;
    return uint3{t % B.bdim.x, (t / B.bdim.x) % B.bdim.y, t / (B.bdim.x * B.bdim.y)};
}

inline void block_barrier() {
    unsigned g = B.bar_gen;
    B.progress++;
    if (++B.bar_arrived == B.alive) {
        B.bar_arrived = 0;
        B.bar_gen++;
        return;
    }
    while (B.bar_gen == g) yield();
}

inline void warp_barrier() {
    unsigned w = B.cur->tid / 32;
    unsigned g = B.wgen[w];
    B.progress++;
    if (++B.warrived[w] == B.walive[w]) {
        B.warrived[w] = 0;
        B.wgen[w]++;
        return;
    }
    while (B.wgen[w] == g) yield();
}

inline void fiber_main();

#if EMU_FAST_SWITCH
// A fiber starts here (the `ret` of its first switch lands on it) and ends by switching back to
// the scheduler for good.
[[noreturn]] inline void fiber_entry() {
    fiber_main();
    emu_switch(&B.cur->sp, B.sched_sp);
    __builtin_unreachable();
}
#endif

inline void fiber_main() {
    B.entry(B.args);
    Fiber* f = B.cur;
    f->done = true;
    B.progress++;
    unsigned w = f->tid / 32;
    B.alive--;
    B.walive[w]--;
    // A barrier that now has everyone still alive is released.
    if (B.bar_arrived > 0 && B.bar_arrived == B.alive) {
        B.bar_arrived = 0;
        B.bar_gen++;
    }
    if (B.warrived[w] > 0 && B.warrived[w] == B.walive[w]) {
        B.warrived[w] = 0;
        B.wgen[w]++;
    }
}

// Runs one block of `entry` (the kernel with its arguments bound). Returns false on deadlock.
inline bool run_block(void (*entry)(void**), void** args) {
    unsigned n = B.nthreads;
    while (stacks.size() < n) stacks.push_back((char*)malloc(STACK));
    B.fibers.assign(n, Fiber{});
    B.entry = entry;
    B.args = args;
    B.alive = n;
    B.bar_arrived = 0;
    for (unsigned w = 0; w < 32; w++) {
        unsigned lo = w * 32;
        B.walive[w] = lo >= n ? 0 : (n - lo < 32 ? n - lo : 32);
        B.warrived[w] = 0;
    }
    for (unsigned i = 0; i < n; i++) {
        Fiber& f = B.fibers[i];
        f.tid = i;
        f.done = false;
#if EMU_FAST_SWITCH
        // The stack as emu_switch leaves it: six saved registers, then the address `ret`
        // jumps to, then a null return address for fiber_entry (which never returns), so that
        // fiber_entry starts with the stack aligned as after a call.
        uintptr_t top = ((uintptr_t)stacks[i] + STACK) & ~(uintptr_t)15;
        void** sp = (void**)top;
        *--sp = nullptr;
        *--sp = (void*)&fiber_entry;
        for (int r = 0; r < 6; r++) *--sp = nullptr;
        f.sp = sp;
#else
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = stacks[i];
        f.ctx.uc_stack.ss_size = STACK;
        f.ctx.uc_link = &B.sched;
        makecontext(&f.ctx, fiber_main, 0);
#endif
    }
    unsigned left = n;
    while (left > 0) {
        u64 before = B.progress;
        for (unsigned i = 0; i < n; i++) {
            Fiber& f = B.fibers[i];
            if (f.done) continue;
            B.cur = &f;
#if EMU_FAST_SWITCH
            emu_switch(&B.sched_sp, f.sp);
#else
            swapcontext(&B.sched, &f.ctx);
#endif
            if (f.done) left--;
        }
        if (left > 0 && B.progress == before) return false;
    }
    return true;
}

template <class T>
T exchange(T v, unsigned src_lane) {
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    unsigned t = B.cur->tid, w = t / 32, l = t % 32;
    u64 bits = 0;
    memcpy(&bits, &v, sizeof(T));
    B.wbuf[w][l] = bits;
    warp_barrier();
    // A lane past the end of a partial warp reads its own value, as on the hardware.
    if (src_lane >= 32 || w * 32 + src_lane >= B.nthreads) src_lane = l;
    u64 got = B.wbuf[w][src_lane];
    warp_barrier();
    T r;
    memcpy(&r, &got, sizeof(T));
    return r;
}

} // namespace emu

#define threadIdx (emu::thread_idx())
#define blockIdx (emu::B.bidx)
#define blockDim (emu::B.bdim)
#define gridDim (emu::B.gdim)

inline void __syncthreads() { emu::block_barrier(); }
inline void __syncwarp(unsigned = FULL_MASK) { emu::warp_barrier(); }

template <class T>
inline T __shfl_xor_sync(unsigned, T v, int m) {
    unsigned l = emu::B.cur->tid % 32;
    return emu::exchange(v, l ^ (unsigned)m);
}
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned d) {
    unsigned l = emu::B.cur->tid % 32;
    unsigned src = l + d;
    return emu::exchange(v, src < 32 ? src : l);
}
template <class T>
inline T __shfl_sync(unsigned, T v, int src) {
    return emu::exchange(v, (unsigned)src % 32);
}

inline int atomicAdd(int* p, int v) {
    int old = *p;
    *p = old + v;
    return old;
}
inline unsigned atomicAdd(unsigned* p, unsigned v) {
    unsigned old = *p;
    *p = old + v;
    return old;
}

inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
inline int __float_as_int(float f) { return (int)__float_as_uint(f); }
inline float __int_as_float(int i) { return __uint_as_float((unsigned)i); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }

inline float h2f(unsigned short h) {
    _Float16 v;
    memcpy(&v, &h, 2);
    return (float)v;
}
inline unsigned short f2h(float f) {
    _Float16 v = (_Float16)f;
    unsigned short h;
    memcpy(&h, &v, 2);
    return h;
}
inline int dp4a(int a, int b, int c) {
    for (int i = 0; i < 4; i++) c += (int)(signed char)(a >> (8 * i)) * (int)(signed char)(b >> (8 * i));
    return c;
}

// exp, fabsf, fmaf, fmaxf, rintf and sqrtf: the C library's (<cmath>), all IEEE-exact except exp,
// which the kernels round from double to float.
