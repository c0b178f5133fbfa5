// bitnet-rs CUDA kernels: the whole forward pass of a BitNet model on the device.
//
// Compiled at run time by NVRTC (src/kernels/cuda/mod.rs, `--fmad=false`, no headers), and by
// g++ for the host emulation the tests run (tests/cuda_emu/emu.h defines BITNET_EMU and the few
// CUDA built-ins used here). Every float step follows the CPU engine's order of operations
// (src/kernels/, src/model/context.rs) so that results match it bit for bit wherever the CPU's
// own order is reproducible: integer dot products exactly, RMSNorm / quantization / RoPE / the
// F16 head in the same float order. The exponentials (softmax, SiLU) are exp() in double rounded
// to float, which is what glibc's expf returns in all but rare halfway cases.
//
// Ternary weights: the CPU's repacked layout (kernels::ternary::TernaryMat): per row, groups of
// 128 values in 32 bytes, byte j holding the 2-bit codes (0..2 = weight + 1) of values j, j + 32,
// j + 64 and j + 96 from its low bits up. So the 32-bit word i of a group, shifted right by 2k and
// masked with 0x03030303, holds the codes of the four consecutive values 32k + 4i .. 32k + 4i + 3:
// one dp4a against the activation word of those four values. Activations are int8 rows in
// natural order.

#ifndef BITNET_EMU
typedef unsigned long long u64;
#define DEV __device__ __forceinline__
#define FULL_MASK 0xffffffffu

static DEV float h2f(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
static DEV unsigned short f2h(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
static DEV int dp4a(int a, int b, int c) {
    int d;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
#endif

// ---------------------------------------------------------------------------------------------
// Shared conventions (mirrored by #[repr(C)] structs in src/kernels/cuda/ops.rs).

// Activation formats a norm kernel can produce.
#define ACT_NONE 0      // f32 only
#define ACT_PER_TOKEN 1 // int8, one scale per token: 127 / max(1e-5, max|x|)
#define ACT_Q8K 2       // int8, Q8_K: one scale per 256 values

// How a ternary segment turns integer sums into outputs.
#define KIND_TENSOR 0  // per-token int8, one weight scale: (isum - asum) / act_scale * w
#define KIND_UNIFORM 1 // per-token int8, equal block scales: f32(f64(d) * (isum - asum)) / act_scale
#define KIND_BLOCKS 2  // per-token int8, per-block scales: f32(sum_b f64(d_b) * (isum_b - asum_b)) / act_scale
#define KIND_Q8K 3     // Q8_K activations: 8 lanes of fma(isum_lane - corr, d_a * d_w), then hsum8

#define MAX_SEGS 3

// One matrix of a stack of matrices that share their input (q/k/v, gate/up).
struct Seg {
    int row_end;     // rows of the stack before the end of this matrix
    int kind;        // KIND_*
    float wscale;    // KIND_TENSOR: the tensor scale; KIND_UNIFORM: the block scale
    float pscale;    // the projection's `.scale` tensor, 1 when it has none
    u64 out;         // float* output, [tokens, out_stride]
    int out_stride;  // floats per token row of `out`
    int accumulate;  // 1: out += y (a residual add), 0: out = y
};

struct Segs {
    Seg s[MAX_SEGS];
    int n;
};

// ---------------------------------------------------------------------------------------------
// Small helpers.

static DEV unsigned short f2bf(float f) {
    // kernels' f32 -> bf16 (quant::float::f32_to_bf16): NaN made quiet, round to nearest even.
    unsigned b = __float_as_uint(f);
    if ((b & 0x7fffffffu) > 0x7f800000u) b = (b & 0xffff0000u) | 0x00400000u;
    unsigned long long r = ((unsigned long long)b + 0x7fffull + ((b >> 16) & 1u)) >> 16;
    return (unsigned short)r;
}
static DEV float bf2f(unsigned short h) { return __uint_as_float(((unsigned)h) << 16); }

// exp rounded to float through double: glibc's expf result except in rare halfway cases.
static DEV float exp_f(float x) { return (float)exp((double)x); }

static DEV int warp_sum_i(int v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}
static DEV double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}
static DEV float warp_max_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// Block-wide reductions (blockDim.x a multiple of 32, at most 1024). Every thread gets the
// result. They start and end with a barrier, so calls can follow each other.
static DEV double block_sum_d(double v) {
    __shared__ double red_d[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) red_d[warp] = v;
    __syncthreads();
    double s = 0.0;
    for (int w = 0; w < nw; w++) s += red_d[w];
    __syncthreads();
    return s;
}
static DEV int block_sum_i(int v) {
    __shared__ int red_i[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_i(v);
    __syncthreads();
    if (lane == 0) red_i[warp] = v;
    __syncthreads();
    int s = 0;
    for (int w = 0; w < nw; w++) s += red_i[w];
    __syncthreads();
    return s;
}
// max of non-negative values (NaN ignored, as the CPU's fold with f32::max).
static DEV float block_max_f(float v) {
    __shared__ float red_f[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max_f(v);
    __syncthreads();
    if (lane == 0) red_f[warp] = v;
    __syncthreads();
    float m = red_f[0];
    for (int w = 1; w < nw; w++) m = fmaxf(m, red_f[w]);
    __syncthreads();
    return m;
}

// The CPU's round-half-even to int8 of x * scale, clamped (NaN -> 0, as Rust's `as i8`).
static DEV int quant_pt(float v, float scale) {
    float r = rintf(__fmul_rn(v, scale));
    if (!(r == r)) return 0;
    r = r < -128.0f ? -128.0f : (r > 127.0f ? 127.0f : r);
    return (int)r;
}

// ggml's nearest_int: the float trick, exact round-half-even for |v| < 2^22.
static DEV int nearest_int(float v) {
    float s = __fadd_rn(v, 12582912.0f);
    return (__float_as_int(s) & 0x007fffff) - 0x00400000;
}

// The value of the pre-op `op` at element i: 0 x itself, 1 silu(x) * y, 2 relu(x)^2 * y.
static DEV float pre_op(const float* x, const float* y, int i, int op) {
    float g = x[i];
    if (op == 1) {
        float s = __fdiv_rn(g, __fadd_rn(1.0f, exp_f(-g)));
        return __fmul_rn(s, y[i]);
    }
    if (op == 2) {
        float r = fmaxf(g, 0.0f);
        return __fmul_rn(__fmul_rn(r, r), y[i]);
    }
    return g;
}

// ---------------------------------------------------------------------------------------------
// Embedding rows: x[t] = table[tokens[t]] as f32. ty: 0 F32, 1 F16, 2 BF16.

extern "C" __global__ void embed_rows(const void* table, int ty, const int* tokens, float* x, int n_embd) {
    int t = blockIdx.x;
    long long row = (long long)tokens[t] * n_embd;
    float* out = x + (long long)t * n_embd;
    for (int i = threadIdx.x; i < n_embd; i += blockDim.x) {
        float v;
        if (ty == 1) v = h2f(((const unsigned short*)table)[row + i]);
        else if (ty == 2) v = bf2f(((const unsigned short*)table)[row + i]);
        else v = ((const float*)table)[row + i];
        out[i] = v;
    }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm of one row per block, then the row's activations in the next matmul's format.
//
// Row b of `out` = norm(pre_op(x[src], y[src])) * w with src = rows ? rows[b] : b; the mean of
// squares summed in f64, y = v * (1 / sqrt(mean + eps)) * w as the CPU's rmsnorm. Then, by
// `mode`: ACT_PER_TOKEN fills q (int8 [row, n]), tsum, tscale (127 / amax) and bsum (sums of
// whole 256-value blocks); ACT_Q8K fills q, bd (block scales), corr (8 sums of 32 per block),
// bsum and tsum as kernels::ternary::ActBuf does from ggml's Q8_K.

extern "C" __global__ void norm_act(const float* x, const float* y, int op, int stride, const int* rows,
                                    float* out, const float* w, int n, float eps, int mode, signed char* q,
                                    int* tsum, float* tscale, int* bsum, float* bd, int* corr) {
    int b = blockIdx.x;
    int src = rows ? rows[b] : b;
    const float* xr = x + (long long)src * stride;
    const float* yr = y ? y + (long long)src * stride : y;
    float* o = out + (long long)b * n;
    double ss = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = pre_op(xr, yr, i, op);
        ss += (double)v * (double)v;
    }
    ss = block_sum_d(ss);
    float mean = (float)(ss / (double)n);
    float scale = __fdiv_rn(1.0f, sqrtf(__fadd_rn(mean, eps)));
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = pre_op(xr, yr, i, op);
        o[i] = __fmul_rn(__fmul_rn(v, scale), w[i]);
    }
    if (mode == ACT_NONE) return;
    __syncthreads();
    int nb = n / 256;
    signed char* qr = q + (long long)b * n;
    if (mode == ACT_PER_TOKEN) {
        float amax = 0.0f;
        for (int i = threadIdx.x; i < n; i += blockDim.x) amax = fmaxf(amax, fabsf(o[i]));
        amax = block_max_f(amax);
        float qs = __fdiv_rn(127.0f, fmaxf(amax, 1e-5f));
        __shared__ int blk[256];
        for (int i = threadIdx.x; i < 256; i += blockDim.x) blk[i] = 0;
        __syncthreads();
        int sum = 0;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            int v = quant_pt(o[i], qs);
            qr[i] = (signed char)v;
            sum += v;
            if (i / 256 < nb && i / 256 < 256) atomicAdd(&blk[i / 256], v);
        }
        sum = block_sum_i(sum);
        if (threadIdx.x == 0) {
            tsum[b] = sum;
            tscale[b] = qs;
        }
        for (int i = threadIdx.x; i < nb && i < 256; i += blockDim.x) bsum[(long long)b * nb + i] = blk[i];
        return;
    }
    // ACT_Q8K: one warp per 256-value block; lane l holds values l + 32k (k = 0..7), so the
    // 32-value chunk k is spread over the warp.
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    int tot = 0;
    for (int blkno = warp; blkno < nb; blkno += nw) {
        const float* v = o + blkno * 256;
        // The largest magnitude, the first one on ties, with its sign.
        float am = -1.0f, mx = 0.0f;
        int ai = 0x7fffffff;
        for (int k = 0; k < 8; k++) {
            int i = lane + 32 * k;
            float a = fabsf(v[i]);
            if (a > am) {
                am = a;
                mx = v[i];
                ai = i;
            }
        }
        for (int off = 16; off > 0; off >>= 1) {
            float oam = __shfl_xor_sync(FULL_MASK, am, off);
            float omx = __shfl_xor_sync(FULL_MASK, mx, off);
            int oai = __shfl_xor_sync(FULL_MASK, ai, off);
            if (oam > am || (oam == am && oai < ai)) {
                am = oam;
                mx = omx;
                ai = oai;
            }
        }
        long long base = (long long)b * nb + blkno;
        signed char* qb = qr + blkno * 256;
        if (!(am > 0.0f)) {
            for (int k = 0; k < 8; k++) qb[lane + 32 * k] = 0;
            if (lane == 0) bd[base] = 0.0f;
            if (lane < 8) corr[base * 8 + lane] = 0;
            if (lane == 0) bsum[base] = 0;
            continue;
        }
        float iscale = __fdiv_rn(-127.0f, mx);
        int bs = 0;
        for (int k = 0; k < 8; k++) {
            int qv = nearest_int(__fmul_rn(iscale, v[lane + 32 * k]));
            if (qv > 127) qv = 127;
            signed char c = (signed char)qv;
            qb[lane + 32 * k] = c;
            int ck = warp_sum_i((int)c);
            if (lane == k) corr[base * 8 + k] = ck;
            bs += ck;
        }
        if (lane == 0) {
            bd[base] = __fdiv_rn(1.0f, iscale);
            bsum[base] = bs;
        }
        tot += bs;
    }
    // tot is the same in every lane of a warp: count it once per warp.
    tot = block_sum_i(lane == 0 ? tot : 0);
    if (threadIdx.x == 0) {
        tsum[b] = tot;
        tscale[b] = 1.0f;
    }
}

// ---------------------------------------------------------------------------------------------
// Output of one (row, token) of a stack: the segment's projection scale, then store or add.

// The segment of stacked row r, and r's row within it. Selected field by field with constant
// indices, so that the kernel parameter block is never indexed at run time (which would copy
// it to local memory).
static DEV Seg seg_of(const Segs& segs, int r, int* local) {
    if (segs.n > 1 && r >= segs.s[0].row_end) {
        if (segs.n > 2 && r >= segs.s[1].row_end) {
            *local = r - segs.s[1].row_end;
            return segs.s[2];
        }
        *local = r - segs.s[0].row_end;
        return segs.s[1];
    }
    *local = r;
    return segs.s[0];
}

static DEV void store_out(const Seg& sg, int local, int t, float y) {
    float* o = (float*)sg.out + (long long)t * sg.out_stride + local;
    float v = __fmul_rn(y, sg.pscale);
    if (sg.accumulate) *o = __fadd_rn(*o, v);
    else *o = v;
}

// y of a total-kind segment (KIND_TENSOR / KIND_UNIFORM) from the row's integer sum.
static DEV float finish_total(const Seg& sg, int isum, int asum, float ascale) {
    if (sg.kind == KIND_UNIFORM) {
        return __fdiv_rn((float)((double)sg.wscale * (double)(isum - asum)), ascale);
    }
    return __fmul_rn(__fdiv_rn((float)(isum - asum), ascale), sg.wscale);
}

// ---------------------------------------------------------------------------------------------
// Ternary matrix x int8 activations, one warp per row, up to 4 tokens per block row
// (grid.y covers the tokens in fours). Row words: cols / 16 u32 words of codes per row.
//
// Lane l handles words l + 32j. Word w lies in 128-value group w / 8 at slot w % 8 = l % 8,
// and in 256-value block w / 16 = 2j + l / 16: its four dp4a products all fall in Q8_K lane
// l % 8 of that block (values 32k + 4(w % 8) .. + 3), which is what KIND_Q8K needs.

#define GEMV_NT 4

extern "C" __global__ void tern_gemv(const unsigned* codes, int rows, int cols, const signed char* q, int n,
                                     const int* tsum, const float* tscale, const int* bsum, const float* bd,
                                     const int* corr, const float* wblk, int blocks, Segs segs) {
    int lane = threadIdx.x & 31;
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    int t0 = blockIdx.y * GEMV_NT;
    int nt = n - t0 < GEMV_NT ? n - t0 : GEMV_NT;
    int local;
    Seg sg = seg_of(segs, r, &local);
    int rw = cols / 16, aw = cols / 4, nb = cols / 256;
    const unsigned* wr = codes + (long long)r * rw;
    const int* act = (const int*)q;
    int tot[GEMV_NT] = {0, 0, 0, 0};
    float accf[GEMV_NT] = {0.0f, 0.0f, 0.0f, 0.0f};
    double accd[GEMV_NT] = {0.0, 0.0, 0.0, 0.0};
    for (int j = 0; j * 32 < rw; j++) {
        int wi = j * 32 + lane;
        int part[GEMV_NT] = {0, 0, 0, 0};
        if (wi < rw) {
            unsigned c = wr[wi];
            int c0 = (int)(c & 0x03030303u), c1 = (int)((c >> 2) & 0x03030303u);
            int c2 = (int)((c >> 4) & 0x03030303u), c3 = (int)((c >> 6) & 0x03030303u);
            int ai = (wi >> 3) * 32 + (wi & 7);
            for (int t = 0; t < GEMV_NT; t++) {
                if (t >= nt) break;
                const int* a = act + (long long)(t0 + t) * aw + ai;
                int s = dp4a(c0, a[0], 0);
                s = dp4a(c1, a[8], s);
                s = dp4a(c2, a[16], s);
                s = dp4a(c3, a[24], s);
                part[t] = s;
            }
        }
        for (int t = 0; t < GEMV_NT; t++) tot[t] += part[t];
        if (!blocks) continue;
        // Per block and slot: lanes l and l ^ 8 share both.
        for (int t = 0; t < GEMV_NT; t++) part[t] += __shfl_xor_sync(FULL_MASK, part[t], 8);
        int b0 = 2 * j, b1 = 2 * j + 1;
        if (sg.kind == KIND_Q8K) {
            for (int t = 0; t < GEMV_NT; t++) {
                int other = __shfl_down_sync(FULL_MASK, part[t], 16);
                if (lane < 8 && t < nt) {
                    long long tb = (long long)(t0 + t) * nb;
                    if (b0 < nb) {
                        float d = __fmul_rn(bd[tb + b0], wblk[(long long)r * nb + b0]);
                        accf[t] = fmaf((float)(part[t] - corr[(tb + b0) * 8 + lane]), d, accf[t]);
                    }
                    if (b1 < nb) {
                        float d = __fmul_rn(bd[tb + b1], wblk[(long long)r * nb + b1]);
                        accf[t] = fmaf((float)(other - corr[(tb + b1) * 8 + lane]), d, accf[t]);
                    }
                }
            }
        } else if (sg.kind == KIND_BLOCKS) {
            for (int t = 0; t < GEMV_NT; t++) {
                int s = part[t];
                s += __shfl_xor_sync(FULL_MASK, s, 4);
                s += __shfl_xor_sync(FULL_MASK, s, 2);
                s += __shfl_xor_sync(FULL_MASK, s, 1);
                int other = __shfl_down_sync(FULL_MASK, s, 16);
                if (lane == 0 && t < nt) {
                    long long tb = (long long)(t0 + t) * nb;
                    if (b0 < nb) accd[t] += (double)wblk[(long long)r * nb + b0] * (double)(s - bsum[tb + b0]);
                    if (b1 < nb) accd[t] += (double)wblk[(long long)r * nb + b1] * (double)(other - bsum[tb + b1]);
                }
            }
        }
    }
    for (int t = 0; t < GEMV_NT; t++) {
        if (t >= nt) break;
        int tok = t0 + t;
        float y;
        if (blocks && sg.kind == KIND_Q8K) {
            // hsum8 over lanes 0..7: ((a4 + a0) + (a6 + a2)) + ((a5 + a1) + (a7 + a3)).
            float a = accf[t];
            float r4 = __fadd_rn(__shfl_down_sync(FULL_MASK, a, 4), a);
            float r2 = __fadd_rn(r4, __shfl_down_sync(FULL_MASK, r4, 2));
            y = __fadd_rn(r2, __shfl_down_sync(FULL_MASK, r2, 1));
        } else if (blocks && sg.kind == KIND_BLOCKS) {
            y = __fdiv_rn((float)accd[t], tscale[tok]);
        } else {
            int s = warp_sum_i(tot[t]);
            y = finish_total(sg, s, tsum[tok], tscale[tok]);
        }
        if (lane == 0) store_out(sg, local, tok, y);
    }
}

// Ternary GEMM for many tokens (prefill), total kinds only: a 64-row x 64-token tile per block
// of 256 threads, each thread 4 rows x 4 tokens, 128 values (one group) per step through
// shared memory.

#define TG_BM 64
#define TG_BN 64

extern "C" __global__ void tern_gemm(const unsigned* codes, int rows, int cols, const signed char* q, int n,
                                     const int* tsum, const float* tscale, Segs segs) {
    __shared__ unsigned sc[TG_BM][8];
    __shared__ int sa[TG_BN][33];
    int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    int r0 = blockIdx.x * TG_BM, n0 = blockIdx.y * TG_BN;
    int rw = cols / 16, aw = cols / 4, ng = cols / 128;
    const int* act = (const int*)q;
    int acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0;
    for (int g = 0; g < ng; g++) {
        for (int e = tid; e < TG_BM * 8; e += 256) {
            int rr = e >> 3, w = e & 7;
            sc[rr][w] = (r0 + rr < rows) ? codes[(long long)(r0 + rr) * rw + g * 8 + w] : 0u;
        }
        for (int e = tid; e < TG_BN * 32; e += 256) {
            int tt = e >> 5, w = e & 31;
            sa[tt][w] = (n0 + tt < n) ? act[(long long)(n0 + tt) * aw + g * 32 + w] : 0;
        }
        __syncthreads();
        for (int i = 0; i < 8; i++) {
            unsigned cw[4];
            for (int a = 0; a < 4; a++) cw[a] = sc[ty + 16 * a][i];
            for (int k = 0; k < 4; k++) {
                int av[4];
                for (int b = 0; b < 4; b++) av[b] = sa[tx + 16 * b][8 * k + i];
                for (int a = 0; a < 4; a++) {
                    int c = (int)((cw[a] >> (2 * k)) & 0x03030303u);
                    for (int b = 0; b < 4; b++) acc[a][b] = dp4a(c, av[b], acc[a][b]);
                }
            }
        }
        __syncthreads();
    }
    for (int a = 0; a < 4; a++) {
        int r = r0 + ty + 16 * a;
        if (r >= rows) continue;
        int local;
        Seg sg = seg_of(segs, r, &local);
        for (int b = 0; b < 4; b++) {
            int t = n0 + tx + 16 * b;
            if (t >= n) continue;
            store_out(sg, local, t, finish_total(sg, acc[a][b], tsum[t], tscale[t]));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Float weights (F32 / F16 / BF16, wty 0 / 1 / 2) x f32 activations rounded as the reference
// does for the weight type (xround 0 none, 1 f16, 2 bf16): the CPU's dot_f32 order, 16 lanes of
// fma (value e into lane e % 16), then pairwise 16 -> 8 -> 4 -> 2 -> 1. Two threads per row,
// each holding 8 of the 16 lanes; 16 rows per warp; up to 4 tokens per block row.

static DEV float load_w(const void* w, int wty, long long i) {
    if (wty == 1) return h2f(((const unsigned short*)w)[i]);
    if (wty == 2) return bf2f(((const unsigned short*)w)[i]);
    return ((const float*)w)[i];
}
static DEV float round_x(float v, int mode) {
    if (mode == 1) return h2f(f2h(v));
    if (mode == 2) return bf2f(f2bf(v));
    return v;
}

extern "C" __global__ void flt_gemv(const void* w, int wty, int rows, int cols, const float* x, int n, int xround,
                                    Segs segs) {
    __shared__ float xs[8][32][8];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, h = lane & 1;
    int r = blockIdx.x * (blockDim.x >> 5) * 16 + warp * 16 + (lane >> 1);
    int t0 = blockIdx.y * GEMV_NT;
    int nt = n - t0 < GEMV_NT ? n - t0 : GEMV_NT;
    float acc[GEMV_NT][8];
    for (int t = 0; t < GEMV_NT; t++)
        for (int m = 0; m < 8; m++) acc[t][m] = 0.0f;
    if (r < rows) {
        long long wrow = (long long)r * cols;
        bool vec = wty == 1 && (cols & 15) == 0;
        for (int e0 = 0; e0 < cols; e0 += 16) {
            int e = e0 + 8 * h;
            float wv[8];
            if (vec) {
                uint4 raw = *(const uint4*)((const unsigned short*)w + wrow + e);
                unsigned parts[4] = {raw.x, raw.y, raw.z, raw.w};
                for (int m = 0; m < 4; m++) {
                    wv[2 * m] = h2f((unsigned short)(parts[m] & 0xffffu));
                    wv[2 * m + 1] = h2f((unsigned short)(parts[m] >> 16));
                }
            } else {
#pragma unroll
                for (int m = 0; m < 8; m++) wv[m] = e + m < cols ? load_w(w, wty, wrow + e + m) : 0.0f;
            }
#pragma unroll
            for (int t = 0; t < GEMV_NT; t++) {
                if (t >= nt) break;
                const float* xr = x + (long long)(t0 + t) * cols;
#pragma unroll
                for (int m = 0; m < 8; m++) {
                    if (e + m < cols) acc[t][m] = fmaf(wv[m], round_x(xr[e + m], xround), acc[t][m]);
                }
            }
        }
    }
    int local = 0;
    Seg sg = seg_of(segs, r < rows ? r : 0, &local);
#pragma unroll
    for (int t = 0; t < GEMV_NT; t++) {
        if (t >= nt) break;
        for (int m = 0; m < 8; m++) xs[warp][lane][m] = acc[t][m];
        __syncwarp();
        if (h == 0 && r < rows) {
            float s[8];
            for (int m = 0; m < 8; m++) s[m] = __fadd_rn(acc[t][m], xs[warp][lane + 1][m]);
            for (int m = 0; m < 4; m++) s[m] = __fadd_rn(s[m], s[m + 4]);
            for (int m = 0; m < 2; m++) s[m] = __fadd_rn(s[m], s[m + 2]);
            store_out(sg, local, t0 + t, __fadd_rn(s[0], s[1]));
        }
        __syncwarp();
    }
}

// Float weights under per-token int8 activations (BitNet b1.58 stored in F32/F16/BF16): the
// sum of w * q in f64 (exact for ternary values), then f32 / the token's scale. A warp per row.

extern "C" __global__ void flt_i8_gemv(const void* w, int wty, int rows, int cols, const signed char* q, int n,
                                       const float* tscale, Segs segs) {
    int lane = threadIdx.x & 31;
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    int t0 = blockIdx.y * GEMV_NT;
    int nt = n - t0 < GEMV_NT ? n - t0 : GEMV_NT;
    int local;
    Seg sg = seg_of(segs, r, &local);
    double acc[GEMV_NT] = {0.0, 0.0, 0.0, 0.0};
    long long wrow = (long long)r * cols;
    for (int e = lane; e < cols; e += 32) {
        double wv = (double)load_w(w, wty, wrow + e);
        for (int t = 0; t < GEMV_NT; t++) {
            if (t >= nt) break;
            acc[t] += wv * (double)q[(long long)(t0 + t) * cols + e];
        }
    }
    for (int t = 0; t < GEMV_NT; t++) {
        if (t >= nt) break;
        double s = warp_sum_d(acc[t]);
        if (lane == 0) store_out(sg, local, t0 + t, __fdiv_rn((float)s, tscale[t0 + t]));
    }
}

// ---------------------------------------------------------------------------------------------
// NEOX RoPE on q and k (pairs (i, i + n_rot / 2) of each head turned by the host's (sin, cos)
// table of each token), then k and v into the f16 cache rows of the tokens' cells. One block
// per token. q: [n, n_head * hd] (in place), k, v: [n, n_kv]; kc / vc: this layer's cache.

extern "C" __global__ void rope_kv(float* q, const float* k, const float* v, const float* table, const int* slots,
                                   unsigned short* kc, unsigned short* vc, int n_head, int n_head_kv, int hd,
                                   int n_rot) {
    int t = blockIdx.x;
    int half = n_rot / 2, n_kv = n_head_kv * hd;
    const float* tab = table + (long long)t * n_rot;
    float* qt = q + (long long)t * n_head * hd;
    for (int e = threadIdx.x; e < n_head * half; e += blockDim.x) {
        int hh = e / half, i = e % half;
        float s = tab[2 * i], c = tab[2 * i + 1];
        float* hp = qt + hh * hd;
        float x0 = hp[i], x1 = hp[i + half];
        hp[i] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
        hp[i + half] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
    }
    const float* kt = k + (long long)t * n_kv;
    const float* vt = v + (long long)t * n_kv;
    long long cell = (long long)slots[t] * n_kv;
    for (int e = threadIdx.x; e < n_kv; e += blockDim.x) {
        int i = e % hd;
        float val = kt[e];
        if (i < half) {
            float s = tab[2 * i], c = tab[2 * i + 1];
            val = __fsub_rn(__fmul_rn(kt[e], c), __fmul_rn(kt[e + half], s));
        } else if (i < n_rot) {
            int j = i - half;
            float s = tab[2 * j], c = tab[2 * j + 1];
            val = __fadd_rn(__fmul_rn(kt[e - half], s), __fmul_rn(kt[e], c));
        }
        kc[cell + e] = f2h(val);
        vc[cell + e] = f2h(vt[e]);
    }
}

// ---------------------------------------------------------------------------------------------
// Attention of tokens t0 + blockIdx.y, head blockIdx.x, over the cells listed for each token
// (cells[offs[t] .. offs[t] + lens[t]], in position order), as kernels::attention: the query
// rounded to f16; each score the sequential sum over the head's dimensions, times the scale;
// softmax with its sum in f64; out[d] = the sequential sum over keys of f16(p) * v[d].
// scores: [gridDim.y, n_head, n_ctx] scratch.

#define ATT_MAX_HD 256

extern "C" __global__ void attention(const float* q, float* out, const unsigned short* kc, const unsigned short* vc,
                                     const int* cells, const int* offs, const int* lens, float* scores, int t0,
                                     int n_head, int n_head_kv, int hd, float scale, int n_ctx) {
    __shared__ float qh[ATT_MAX_HD];
    int h = blockIdx.x, t = t0 + blockIdx.y;
    int n_kv = n_head_kv * hd, group = n_head / n_head_kv;
    int kvo = (h / group) * hd;
    const float* qt = q + (long long)t * n_head * hd + h * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) qh[d] = h2f(f2h(qt[d]));
    __syncthreads();
    int len = lens[t];
    const int* list = cells + offs[t];
    float* sc = scores + ((long long)blockIdx.y * n_head + h) * n_ctx;
    float mx = __int_as_float(0xff800000); // -inf
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        const unsigned short* kr = kc + (long long)list[j] * n_kv + kvo;
        float s = 0.0f;
        for (int d = 0; d < hd; d++) s = __fadd_rn(s, __fmul_rn(qh[d], h2f(kr[d])));
        s = __fmul_rn(s, scale);
        sc[j] = s;
        mx = fmaxf(mx, s);
    }
    // max over the block (scores may be negative: reduce with -inf start)
    __shared__ float red[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    mx = warp_max_f(mx);
    if (lane == 0) red[warp] = mx;
    __syncthreads();
    mx = red[0];
    for (int i = 1; i < nw; i++) mx = fmaxf(mx, red[i]);
    double sum = 0.0;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        float e = exp_f(__fsub_rn(sc[j], mx));
        sc[j] = e;
        sum += (double)e;
    }
    sum = block_sum_d(sum);
    float inv = (float)(1.0 / sum);
    for (int j = threadIdx.x; j < len; j += blockDim.x) sc[j] = h2f(f2h(__fmul_rn(sc[j], inv)));
    __syncthreads();
    float* ot = out + (long long)t * n_head * hd + h * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0.0f;
        const unsigned short* vcol = vc + kvo + d;
        for (int j = 0; j < len; j++) o = __fadd_rn(o, __fmul_rn(sc[j], h2f(vcol[(long long)list[j] * n_kv])));
        ot[d] = o;
    }
}

// ---------------------------------------------------------------------------------------------
// The Q8_0 head (LoadOptions { head: Q8_0 }): weights requantized from F16 at load, int8 values
// [rows, cols] and one f32 scale per 32 values; activations quantized to Q8_0 as the CPU's
// `quantize_q8_0` does, then per row and token acc = fma(f32(isum_b), d_w * d_x, acc) over the
// blocks in order, as Q8Head's scalar reference (src/kernels/f16.rs).

// x86's float -> int32 conversion then saturating packs: NaN, infinities and values outside
// int32 give -128.
static DEV int x86_round_i8(float v) {
    float r = rintf(v);
    if (!(r >= -2147483648.0f && r < 2147483648.0f)) return -128;
    return r < -128.0f ? -128 : (r > 127.0f ? 127 : (int)r);
}

// One block per token; each thread quantizes whole 32-value blocks. q: int8 [n, cols];
// d: the f16-rounded block scales as f32 [n, cols / 32].
extern "C" __global__ void q8_quant(const float* x, int cols, signed char* q, float* d) {
    int t = blockIdx.x, nb = cols / 32;
    const float* xr = x + (long long)t * cols;
    for (int b = threadIdx.x; b < nb; b += blockDim.x) {
        const float* v = xr + b * 32;
        float mx = 0.0f;
        for (int i = 0; i < 32; i++) mx = fmaxf(mx, fabsf(v[i]));
        float dd = __fdiv_rn(mx, 127.0f);
        float id = mx != 0.0f ? __fdiv_rn(127.0f, mx) : 0.0f;
        d[(long long)t * nb + b] = h2f(f2h(dd));
        signed char* o = q + (long long)t * cols + b * 32;
        for (int i = 0; i < 32; i++) o[i] = (signed char)x86_round_i8(__fmul_rn(v[i], id));
    }
}

// One warp per (row, token), 4 warps a block: grid (ceil(rows / 4), n). Lane l takes block
// 32g + l of each group of 32 blocks (its integer dot and its scale product); the sums are then
// accumulated block by block, in order, in every lane. out[t * out_stride + r].
extern "C" __global__ void q8_head(const signed char* wq, const float* wd, int rows, int cols,
                                   const signed char* xq, const float* xd, float* out, int out_stride) {
    // The CPU head's order (llama.cpp's x86 Q8_0 dot, `Q8Head::dot_scalar`): per block eight
    // exact int lanes of four products each, acc[u] = fma(lane[u], d_w * d_x, acc[u]) block
    // after block, then the pairwise sum of the eight accumulators. Lanes 0..7 of the warp
    // each own one accumulator (the blocks in order, so the same bits as the CPU); the other
    // lanes idle.
    int lane = threadIdx.x & 31;
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int t = blockIdx.y;
    int nb = cols / 32;
    bool live = r < rows && lane < 8;
    const signed char* w = wq + (long long)(r < rows ? r : 0) * cols;
    const signed char* a = xq + (long long)t * cols;
    float acc = 0.0f;
    if (live) {
        for (int b = 0; b < nb; b++) {
            const signed char* wb = w + b * 32 + 4 * lane;
            const signed char* ab = a + b * 32 + 4 * lane;
            int s = 0;
            for (int i = 0; i < 4; i++) s += (int)wb[i] * (int)ab[i];
            float d = __fmul_rn(wd[(long long)r * nb + b], xd[(long long)t * nb + b]);
            acc = fmaf((float)s, d, acc);
        }
    }
    float v[8];
    for (int k = 0; k < 8; k++) v[k] = __shfl_sync(FULL_MASK, acc, k);
    if (r < rows && lane == 0) {
        float r0 = v[4] + v[0], r1 = v[5] + v[1], r2 = v[6] + v[2], r3 = v[7] + v[3];
        out[(long long)t * out_stride + r] = (r0 + r2) + (r1 + r3);
    }
}

// ---------------------------------------------------------------------------------------------
// Device read bandwidth for `bitnet bench --gpu`: every block sums its share of n 16-byte
// words (the sum is written so that the reads cannot be dropped).

extern "C" __global__ void read_sum(const uint4* p, long long n, unsigned* out) {
    unsigned acc = 0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        uint4 v = p[i];
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    acc = (unsigned)warp_sum_i((int)acc);
    if ((threadIdx.x & 31) == 0) atomicAdd(out, acc);
}
