// RWKV-4 WKV operator, CUDA backend: a chunked parallel scan over time.
//
// docs/wkv.md derives everything used here (notation: state (aa, bb, pp), the local summary
// of a chunk, `combine`, the reverse recurrence for (ga, gb) and its per-segment multiplier m,
// and G, the explicit gradient of the final pp).
//
// Work decomposition. A block owns one batch row b and CH = 32 consecutive channels
// (threadIdx.x = channel, so every warp access to k/v/y/gk/gv is one coalesced 128-byte
// row) and walks T in tiles of NSEG * SEG steps. In a tile, thread row s (threadIdx.y) owns
// the segment of SEG steps starting at t0 + s * SEG and keeps its k, v (and gy) in registers:
//   forward:  1. each thread folds its segment into a local summary (state after the segment
//               when started from the empty state);
//             2. one warp scans the NSEG summaries in order, starting from the carry (state at
//               the start of the tile), giving each segment its incoming state;
//             3. every thread replays its segment from its incoming state and writes y.
//             If asked, the incoming state of every segment is written as a checkpoint
//             (B, T/SEG, 3, C), so the backward never has to scan forward again.
//   backward: tiles from last to first; each thread recomputes its segment's states from its
//             checkpoint, folds the reverse recurrence into (local ga, local gb, multiplier m,
//             "took a k-branch"), one warp scans those from the end of the tile, and every
//             thread replays its segment backwards writing gk, gv.
// Every input element is read once and every output written once (plus checkpoints: 3/SEG
// of one input in float32). Float32 arithmetic throughout; float32 or bfloat16 I/O.
//
// Gradients of w and u: each thread accumulates its channel's sum over its segments in a
// register, the block reduces the NSEG rows in shared memory in a fixed order, and writes one
// partial per (b, c); Python sums the B partials. No atomics: the result is deterministic.
//
// T has no limit beyond int32 indices per (b): tiles loop over all of T.
#ifdef WKV_HOST_EMULATION
#include "wkv_host_emulation.h"  // plain-C++ stand-ins for CUDA built-ins (tests only)
#else
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#endif

#include <cstdint>

namespace {

constexpr int CH = 32;       // channels per block: one warp row
constexpr int SEG = 8;       // steps per thread per tile = checkpoint interval
constexpr int NSEG_F = 16;   // segments (warps) per block, forward: 512 threads, tile 128
constexpr int NSEG_B = 8;    // segments per block, backward: 256 threads (more registers each)
// The empty state's max exponent comes from Python (symato/models/ops/wkv4.py INIT_PP,
// passed by the loader as -DWKV4_INIT_PP=...), so the value is written once.
#ifndef WKV4_INIT_PP
#error "WKV4_INIT_PP is not defined: build through symato.models.ops.extension (it passes INIT_PP of symato/models/ops/wkv4.py)"
#endif
constexpr float INIT_PP = WKV4_INIT_PP;

__device__ __forceinline__ float load(const float* p) { return __ldg(p); }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16(x); }

// Fast intrinsics, safe here because every exp argument is <= 0 (result in [0, 1], flushed to
// 0 below ~-87) and every denominator d = e1*bb + e2 lies in [1, 1/(1 - e^w)] once a token has
// been seen (one of e1, e2 is 1 and bb >= 1): ex2.approx-based exp has a relative error of a
// few 1e-7 for the weights that matter, and the reciprocal ~1 ulp. Fewer instructions per
// element keep the kernels bound by memory, not by the SFU/FMA pipes.
__device__ __forceinline__ float fexp(float x) { return __expf(x); }
__device__ __forceinline__ float frcp(float x) { return __fdividef(1.f, x); }

struct State {
  float a, b, p;  // numerator, denominator, max exponent: true values are a*e^p, b*e^p
};

// exp of the (<= 0) distance between two exponents, and which of the two is larger.
// Returns (e1, e2) = (exp(x - max), exp(y - max)); one of them is exactly 1.
__device__ __forceinline__ void weights(float x, float y, float& e1, float& e2, bool& x_wins) {
  const float e = fexp(-fabsf(x - y));
  x_wins = x >= y;
  e1 = x_wins ? 1.f : e;
  e2 = x_wins ? e : 1.f;
}

// One state update: decay by w, then add token (k, v).
__device__ __forceinline__ void update(State& s, float w, float k, float v) {
  const float x = w + s.p;
  float e1, e2;
  bool decay_wins;
  weights(x, k, e1, e2, decay_wins);
  s.a = e1 * s.a + e2 * v;
  s.b = e1 * s.b + e2;
  s.p = decay_wins ? x : k;
}

// The state s followed by a chunk of n steps whose local summary (from empty) is l.
__device__ __forceinline__ State combine(const State& s, const State& l, float nw) {
  const float x = s.p + nw;
  float e1, e2;
  bool carry_wins;
  weights(x, l.p, e1, e2, carry_wins);
  return State{e1 * s.a + e2 * l.a, e1 * s.b + e2 * l.b, carry_wins ? x : l.p};
}

// Quantities of step t recomputed from the state before it (see docs/wkv.md, backward).
struct StepVals {
  float y, r1, r2, e1, e2;
  bool decay_wins;
};

__device__ __forceinline__ StepVals step_vals(const State& s, float w, float u, float k, float v) {
  StepVals o;
  float e1, e2;
  bool st;
  weights(s.p, u + k, e1, e2, st);
  const float inv = frcp(e1 * s.b + e2);
  o.r1 = e1 * inv;
  o.r2 = e2 * inv;
  o.y = o.r1 * s.a + o.r2 * v;
  weights(w + s.p, k, o.e1, o.e2, o.decay_wins);
  return o;
}

__device__ __forceinline__ int seg_len(int T, int start) {
  const int n = T - start;
  return n < 0 ? 0 : (n > SEG ? SEG : n);
}

template <typename io_t>
__global__ void __launch_bounds__(CH* NSEG_F)
    wkv4_forward_kernel(int T, int C, const float* __restrict__ w, const float* __restrict__ u,
                       const io_t* __restrict__ k, const io_t* __restrict__ v,
                       const float* __restrict__ s_in, io_t* __restrict__ y,
                       float* __restrict__ s_out, float* __restrict__ ckpt) {
  __shared__ float sh_a[NSEG_F][CH], sh_b[NSEG_F][CH], sh_p[NSEG_F][CH];
  const int x = threadIdx.x, s = threadIdx.y, b = blockIdx.y;
  const int c = blockIdx.x * CH + x;
  const bool cok = c < C;
  const float ww = cok ? w[c] : 0.f, uu = cok ? u[c] : 0.f;
  const int64_t bT = static_cast<int64_t>(b) * T;
  const int nseg_total = (T + SEG - 1) / SEG;
  State carry{0.f, 0.f, INIT_PP};
  if (s == 0 && cok) {
    const float* si = s_in + static_cast<int64_t>(b) * 3 * C;
    carry = State{si[c], si[C + c], si[2 * C + c]};
  }
  for (int t0 = 0; t0 < T; t0 += NSEG_F * SEG) {
    const int ts = t0 + s * SEG;
    const int n = seg_len(T, ts);
    float kr[SEG], vr[SEG];
#pragma unroll
    for (int i = 0; i < SEG; ++i) {  // all loads issued before any use
      const bool ok = cok && i < n;
      const int64_t idx = (bT + ts + i) * C + c;
      kr[i] = ok ? load(k + idx) : 0.f;
      vr[i] = ok ? load(v + idx) : 0.f;
    }
    State l{0.f, 0.f, INIT_PP};
#pragma unroll
    for (int i = 0; i < SEG; ++i)
      if (i < n) update(l, ww, kr[i], vr[i]);
    sh_a[s][x] = l.a; sh_b[s][x] = l.b; sh_p[s][x] = l.p;
    __syncthreads();
    if (s == 0) {
      for (int j = 0; j < NSEG_F; ++j) {
        const State lj{sh_a[j][x], sh_b[j][x], sh_p[j][x]};
        sh_a[j][x] = carry.a; sh_b[j][x] = carry.b; sh_p[j][x] = carry.p;
        carry = combine(carry, lj, static_cast<float>(seg_len(T, t0 + j * SEG)) * ww);
      }
    }
    __syncthreads();
    State st{sh_a[s][x], sh_b[s][x], sh_p[s][x]};
    if (ckpt != nullptr && cok && n > 0) {
      float* cp = ckpt + (static_cast<int64_t>(b) * nseg_total + ts / SEG) * 3 * C + c;
      cp[0] = st.a; cp[C] = st.b; cp[2 * C] = st.p;
    }
#pragma unroll
    for (int i = 0; i < SEG; ++i) {
      if (i < n) {
        float e1, e2;
        bool sw;
        weights(st.p, uu + kr[i], e1, e2, sw);
        const float yy = (e1 * st.a + e2 * vr[i]) * frcp(e1 * st.b + e2);
        if (cok) store(y + (bT + ts + i) * C + c, yy);
        update(st, ww, kr[i], vr[i]);
      }
    }
    __syncthreads();  // shared arrays are rewritten by the next tile
  }
  if (s == 0 && cok) {
    float* so = s_out + static_cast<int64_t>(b) * 3 * C;
    so[c] = carry.a; so[C + c] = carry.b; so[2 * C + c] = carry.p;
  }
}

template <typename io_t>
__global__ void __launch_bounds__(CH* NSEG_B)
    wkv4_backward_kernel(int T, int C, const float* __restrict__ w, const float* __restrict__ u,
                        const io_t* __restrict__ k, const io_t* __restrict__ v,
                        const float* __restrict__ s_in, const float* __restrict__ s_out,
                        const float* __restrict__ ckpt, const io_t* __restrict__ gy,
                        const float* __restrict__ gs, float* __restrict__ gw_part,
                        float* __restrict__ gu_part, io_t* __restrict__ gk,
                        io_t* __restrict__ gv, float* __restrict__ gs_in) {
  __shared__ float sh_a[NSEG_B][CH], sh_b[NSEG_B][CH], sh_m[NSEG_B][CH];
  __shared__ bool sh_k[NSEG_B][CH];
  const int x = threadIdx.x, s = threadIdx.y, b = blockIdx.y;
  const int c = blockIdx.x * CH + x;
  const bool cok = c < C;
  const float ww = cok ? w[c] : 0.f, uu = cok ? u[c] : 0.f;
  const int64_t bT = static_cast<int64_t>(b) * T;
  const int64_t b3C = static_cast<int64_t>(b) * 3 * C;
  const int nseg_total = (T + SEG - 1) / SEG;
  // G: explicit dL/dpp of the final state, holding the true numerator/denominator fixed.
  float G = 0.f, ga = 0.f, gb = 0.f;
  if (cok) {
    ga = gs[b3C + c];
    gb = gs[b3C + C + c];
    G = gs[b3C + 2 * C + c] - ga * s_out[b3C + c] - gb * s_out[b3C + C + c];
  }
  bool alive = true;  // carry (warp s == 0 only): still on the max path of the final pp
  float gw_acc = 0.f, gu_acc = 0.f;
  const int tile = NSEG_B * SEG;
  for (int t0 = ((T - 1) / tile) * tile; t0 >= 0; t0 -= tile) {
    const int ts = t0 + s * SEG;
    const int n = seg_len(T, ts);
    float kr[SEG], vr[SEG], gr[SEG];
#pragma unroll
    for (int i = 0; i < SEG; ++i) {
      const bool ok = cok && i < n;
      const int64_t idx = (bT + ts + i) * C + c;
      kr[i] = ok ? load(k + idx) : 0.f;
      vr[i] = ok ? load(v + idx) : 0.f;
      gr[i] = ok ? load(gy + idx) : 0.f;
    }
    // States before each step of the segment, recomputed from its checkpoint.
    float pa[SEG], pb[SEG], pq[SEG];
    State st{0.f, 0.f, INIT_PP};
    if (cok && n > 0) {
      const float* cp = ckpt + (static_cast<int64_t>(b) * nseg_total + ts / SEG) * 3 * C + c;
      st = State{cp[0], cp[C], cp[2 * C]};
    }
#pragma unroll
    for (int i = 0; i < SEG; ++i) {
      pa[i] = st.a; pb[i] = st.b; pq[i] = st.p;
      if (i < n) update(st, ww, kr[i], vr[i]);
    }
    // Fold the segment's reverse recurrence with zero incoming gradient.
    float la = 0.f, lb = 0.f, m = 1.f;
    bool anyk = false;
#pragma unroll
    for (int i = SEG - 1; i >= 0; --i) {
      if (i < n) {
        const StepVals q = step_vals(State{pa[i], pb[i], pq[i]}, ww, uu, kr[i], vr[i]);
        la = gr[i] * q.r1 + q.e1 * la;
        lb = -gr[i] * q.r1 * q.y + q.e1 * lb;
        m *= q.e1;
        anyk = anyk || !q.decay_wins;
      }
    }
    sh_a[s][x] = la; sh_b[s][x] = lb; sh_m[s][x] = m; sh_k[s][x] = anyk;
    __syncthreads();
    if (s == 0) {  // reverse scan: incoming (ga, gb, alive) at the end of each segment
      for (int j = NSEG_B - 1; j >= 0; --j) {
        const float lj_a = sh_a[j][x], lj_b = sh_b[j][x], mj = sh_m[j][x];
        const bool kj = sh_k[j][x];
        sh_a[j][x] = ga; sh_b[j][x] = gb; sh_k[j][x] = alive;
        ga = mj * ga + lj_a;
        gb = mj * gb + lj_b;
        alive = alive && !kj;
      }
    }
    __syncthreads();
    float a_ = sh_a[s][x], b_ = sh_b[s][x];
    bool al = sh_k[s][x];
#pragma unroll
    for (int i = SEG - 1; i >= 0; --i) {
      if (i < n) {
        const StepVals q = step_vals(State{pa[i], pb[i], pq[i]}, ww, uu, kr[i], vr[i]);
        const float direct = gr[i] * q.r2 * (vr[i] - q.y);
        const float gkk = direct + q.e2 * (vr[i] * a_ + b_) + ((al && !q.decay_wins) ? G : 0.f);
        const float gvv = gr[i] * q.r2 + q.e2 * a_;
        gu_acc += direct;
        gw_acc += q.e1 * (a_ * pa[i] + b_ * pb[i]) + ((al && q.decay_wins) ? G : 0.f);
        al = al && q.decay_wins;
        a_ = gr[i] * q.r1 + q.e1 * a_;
        b_ = -gr[i] * q.r1 * q.y + q.e1 * b_;
        if (cok) {
          const int64_t idx = (bT + ts + i) * C + c;
          store(gk + idx, gkk);
          store(gv + idx, gvv);
        }
      }
    }
    __syncthreads();  // shared arrays are rewritten by the next tile
  }
  if (s == 0 && cok) {  // ga, gb, alive now refer to t = 0: gradient of the input state
    gs_in[b3C + c] = ga;
    gs_in[b3C + C + c] = gb;
    gs_in[b3C + 2 * C + c] =
        ga * s_in[b3C + c] + gb * s_in[b3C + C + c] + (alive ? G : 0.f);
  }
  // Deterministic block reduction of the w/u gradient partials over the NSEG_B rows.
  sh_a[s][x] = gw_acc;
  sh_b[s][x] = gu_acc;
  __syncthreads();
  if (s == 0 && cok) {
    float sw = 0.f, su = 0.f;
    for (int j = 0; j < NSEG_B; ++j) {
      sw += sh_a[j][x];
      su += sh_b[j][x];
    }
    gw_part[static_cast<int64_t>(b) * C + c] = sw;
    gu_part[static_cast<int64_t>(b) * C + c] = su;
  }
}

}  // namespace

#ifndef WKV_HOST_EMULATION
// Launchers called by kernels/wkv4_cuda_bind.cpp (plain pointers: no torch headers in nvcc).
void wkv4_cuda_forward(int B, int T, int C, const float* w, const float* u, const void* k,
                      const void* v, const float* s_in, void* y, float* s_out, float* ckpt,
                      bool bf16, cudaStream_t stream) {
  const dim3 grid((C + CH - 1) / CH, B), block(CH, NSEG_F);
  if (bf16) {
    wkv4_forward_kernel<__nv_bfloat16><<<grid, block, 0, stream>>>(
        T, C, w, u, static_cast<const __nv_bfloat16*>(k), static_cast<const __nv_bfloat16*>(v),
        s_in, static_cast<__nv_bfloat16*>(y), s_out, ckpt);
  } else {
    wkv4_forward_kernel<float><<<grid, block, 0, stream>>>(
        T, C, w, u, static_cast<const float*>(k), static_cast<const float*>(v), s_in,
        static_cast<float*>(y), s_out, ckpt);
  }
}

void wkv4_cuda_backward(int B, int T, int C, const float* w, const float* u, const void* k,
                       const void* v, const float* s_in, const float* s_out, const float* ckpt,
                       const void* gy, const float* gs, float* gw_part, float* gu_part, void* gk,
                       void* gv, float* gs_in, bool bf16, cudaStream_t stream) {
  const dim3 grid((C + CH - 1) / CH, B), block(CH, NSEG_B);
  if (bf16) {
    using bf = __nv_bfloat16;
    wkv4_backward_kernel<bf><<<grid, block, 0, stream>>>(
        T, C, w, u, static_cast<const bf*>(k), static_cast<const bf*>(v), s_in, s_out, ckpt,
        static_cast<const bf*>(gy), gs, gw_part, gu_part, static_cast<bf*>(gk),
        static_cast<bf*>(gv), gs_in);
  } else {
    wkv4_backward_kernel<float><<<grid, block, 0, stream>>>(
        T, C, w, u, static_cast<const float*>(k), static_cast<const float*>(v), s_in, s_out,
        ckpt, static_cast<const float*>(gy), gs, gw_part, gu_part, static_cast<float*>(gk),
        static_cast<float*>(gv), gs_in);
  }
}

int wkv4_cuda_checkpoint_interval() { return SEG; }
#endif  // WKV_HOST_EMULATION
