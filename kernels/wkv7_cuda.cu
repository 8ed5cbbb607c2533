// RWKV-7 WKV operator, CUDA backend (docs/wkv.md, "WKV-7", has the math and the design).
//
// Per (b, h): S_t = S_{t-1} diag(d_t) + (S_{t-1} a_t) b_t^T + v_t k_t^T, y_t = S_t r_t,
// d_t = exp(-exp(w_t)); S[i, j] with i = value dim (row), j = key dim (column).
//
// Work decomposition. One block per (b, h); the rows of S are independent recurrences
// that share the step's r, d, k, a, b, so the block's threads split the state: thread
// (n, g) = (threadIdx.x / G, threadIdx.x % G) owns L = 16 consecutive entries, columns
// g*L .. g*L+15 of row n (G = N / 16 threads per row, adjacent lanes of one warp). A row's
// dot products (S a, S r) are a register loop plus log2(G) xor-shuffles; no shared-memory
// reductions, one __syncthreads per K = 16 steps in the forward. The inputs of K steps are
// staged in shared memory (coalesced loads, d = exp(-exp(w)) computed once per element).
//
// Backward. dS (the gradient w.r.t. S_t) obeys dS_{t-1} = dS_t diag(d_t) + (dS_t b_t) a_t^T,
// row by row again, but the input gradients are sums over rows (dk = dS^T v, dr = S^T dy,
// ...). So every thread keeps dS twice: its 16 entries of row n AND of column n. Row
// sums (dv, u = dS b) reduce over the G threads of a row, column sums over the G threads of
// a column: both are shuffles, never a transpose through shared memory. Only u, needed by
// the column copy, goes through shared memory (one vector per step, two barriers).
// The states S_{t-1}, S_t are recomputed in column layout from checkpoints the forward
// wrote every K steps, using sa_t = S_{t-1} a_t the forward also wrote (a row sum the
// column layout cannot form cheaply). A chunk of K steps is walked back in sub-chunks of
// J = 4 whose J+1 states live in registers: each sub-chunk is recomputed from the
// chunk's checkpoint (at most 12 + 4 column steps), 2.5 recomputed steps per step.
//
// Memory kept for the backward: checkpoints (B, H, ceil(T/K), N, N) and sa (B, T, H, N),
// float32: N^2/16 + N floats per (b, t, h); for N = 64, 320 floats against the six inputs'
// 384. T has no limit (int64 offsets; T itself is an int).
//
// Numerics: float32 arithmetic with accurate expf (no fast math). Head sizes N = 16, 32, 64.
#ifdef WKV_HOST_EMULATION
#include "wkv_host_emulation.h"  // plain-C++ stand-ins for CUDA built-ins (tests only)
#else
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#endif

#include <cstdint>

namespace wkv7 {

constexpr int L = 16;  // state entries per thread (one row or column segment)
constexpr int K = 16;  // steps per chunk = checkpoint interval
constexpr int J = 4;   // backward sub-chunk: states held in registers

__device__ __forceinline__ float load(const float* p) { return __ldg(p); }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float x) { *p = x; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16(x); }

// Sum over the G adjacent lanes that share a row (or column); every lane gets the same
// bits (the butterfly adds the same two partial sums in each lane).
template <int G>
__device__ __forceinline__ float group_sum(float x) {
#pragma unroll
  for (int o = G / 2; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

template <int N>
struct Shape {
  static constexpr int G = N / L;        // threads per row
  static constexpr int THREADS = N * G;  // threads per block
};

// Offset of element 0 of step t of head h in the (B, T, H, N) layout.
__device__ __forceinline__ int64_t at(int T, int H, int bi, int t, int h, int N) {
  return ((static_cast<int64_t>(bi) * T + t) * H + h) * N;
}

enum FwdTile { F_R, F_D, F_K, F_V, F_A, F_B, F_COUNT };

template <typename io_t, int N>
__global__ void __launch_bounds__(Shape<N>::THREADS, 2)  // 2 blocks/SM: no spills at N = 64
    wkv7_forward_kernel(int T, int H, const io_t* __restrict__ r, const io_t* __restrict__ w,
                        const io_t* __restrict__ k, const io_t* __restrict__ v,
                        const io_t* __restrict__ a, const io_t* __restrict__ b,
                        const float* __restrict__ s_in, io_t* __restrict__ y,
                        float* __restrict__ s_out, float* __restrict__ ckpt,
                        float* __restrict__ sa_out) {
  constexpr int G = Shape<N>::G, NT = Shape<N>::THREADS;
  __shared__ float sh[F_COUNT][K][N];
  const int tid = threadIdx.x, i = tid / G, j0 = (tid % G) * L;
  const int bh = blockIdx.x, bi = bh / H, h = bh % H;
  const int row = i * N + j0;  // this thread's first entry within one N x N state
  const int64_t sbase = static_cast<int64_t>(bh) * N * N + row;
  const int nck = (T + K - 1) / K;
  float s[L];
#pragma unroll
  for (int q = 0; q < L; ++q) s[q] = s_in[sbase + q];
  for (int c = 0; c < nck; ++c) {
    const int t0 = c * K, len = T - t0 < K ? T - t0 : K;
    if (ckpt != nullptr) {
      float* cp = ckpt + (static_cast<int64_t>(bh) * nck + c) * N * N + row;
#pragma unroll
      for (int q = 0; q < L; ++q) cp[q] = s[q];
    }
    __syncthreads();  // the previous tile is consumed
    for (int e = tid; e < len * N; e += NT) {
      const int m = e / N, n = e % N;
      const int64_t idx = at(T, H, bi, t0 + m, h, N) + n;
      sh[F_R][m][n] = load(r + idx);
      sh[F_D][m][n] = expf(-expf(load(w + idx)));
      sh[F_K][m][n] = load(k + idx);
      sh[F_V][m][n] = load(v + idx);
      sh[F_A][m][n] = load(a + idx);
      sh[F_B][m][n] = load(b + idx);
    }
    __syncthreads();
    for (int m = 0; m < len; ++m) {
      float p = 0.f;
#pragma unroll
      for (int q = 0; q < L; ++q) p += s[q] * sh[F_A][m][j0 + q];
      const float sa = group_sum<G>(p);
      const float vi = sh[F_V][m][i];
      float yy = 0.f;
#pragma unroll
      for (int q = 0; q < L; ++q) {
        s[q] = s[q] * sh[F_D][m][j0 + q] + sa * sh[F_B][m][j0 + q] + vi * sh[F_K][m][j0 + q];
        yy += s[q] * sh[F_R][m][j0 + q];
      }
      yy = group_sum<G>(yy);
      if (j0 == 0) {
        const int64_t idx = at(T, H, bi, t0 + m, h, N) + i;
        store(y + idx, yy);
        if (sa_out != nullptr) sa_out[idx] = sa;
      }
    }
  }
#pragma unroll
  for (int q = 0; q < L; ++q) s_out[sbase + q] = s[q];
}

enum BwdTile { B_R, B_D, B_F, B_K, B_V, B_A, B_B, B_DY, B_SA, B_COUNT };

// One step of the recurrence on a column segment: S[i, n] for the thread's 16 rows i.
template <int N>
__device__ __forceinline__ void column_step(float* s, const float (*sh)[K][N], int m, int n,
                                            int i0) {
  const float dn = sh[B_D][m][n], bn = sh[B_B][m][n], kn = sh[B_K][m][n];
#pragma unroll
  for (int q = 0; q < L; ++q) s[q] = s[q] * dn + sh[B_SA][m][i0 + q] * bn + sh[B_V][m][i0 + q] * kn;
}

template <typename io_t, int N>
__global__ void __launch_bounds__(Shape<N>::THREADS)
    wkv7_backward_kernel(int T, int H, const io_t* __restrict__ r, const io_t* __restrict__ w,
                         const io_t* __restrict__ k, const io_t* __restrict__ v,
                         const io_t* __restrict__ a, const io_t* __restrict__ b,
                         const float* __restrict__ ckpt, const float* __restrict__ sa_in,
                         const io_t* __restrict__ gy, const float* __restrict__ gs,
                         io_t* __restrict__ gr, io_t* __restrict__ gw, io_t* __restrict__ gk,
                         io_t* __restrict__ gv, io_t* __restrict__ ga, io_t* __restrict__ gb,
                         float* __restrict__ gs_in) {
  constexpr int G = Shape<N>::G, NT = Shape<N>::THREADS;
  __shared__ float sh[B_COUNT][K][N];
  __shared__ float U[N];  // u = dS_t b_t, one entry per row
  const int tid = threadIdx.x, n = tid / G, j0 = (tid % G) * L;
  const int bh = blockIdx.x, bi = bh / H, h = bh % H;
  const int64_t sbase = static_cast<int64_t>(bh) * N * N;
  const int nck = (T + K - 1) / K;
  // dS twice: row n (columns j0..j0+15) and column n (rows j0..j0+15).
  float dSr[L], dSc[L];
#pragma unroll
  for (int q = 0; q < L; ++q) {
    dSr[q] = gs[sbase + static_cast<int64_t>(n) * N + j0 + q];
    dSc[q] = gs[sbase + static_cast<int64_t>(j0 + q) * N + n];
  }
  for (int c = nck - 1; c >= 0; --c) {
    const int t0 = c * K, len = T - t0 < K ? T - t0 : K;
    __syncthreads();  // the previous tile is consumed
    for (int e = tid; e < len * N; e += NT) {
      const int m = e / N, col = e % N;
      const int64_t idx = at(T, H, bi, t0 + m, h, N) + col;
      const float ww = load(w + idx), ew = expf(ww);
      sh[B_R][m][col] = load(r + idx);
      sh[B_D][m][col] = expf(-ew);
      sh[B_F][m][col] = -expf(ww - ew);  // d(decay)/dw, finite for any w
      sh[B_K][m][col] = load(k + idx);
      sh[B_V][m][col] = load(v + idx);
      sh[B_A][m][col] = load(a + idx);
      sh[B_B][m][col] = load(b + idx);
      sh[B_DY][m][col] = load(gy + idx);
      sh[B_SA][m][col] = sa_in[idx];
    }
    __syncthreads();
    const float* cp = ckpt + (static_cast<int64_t>(bh) * nck + c) * N * N;
    for (int sub = (len - 1) / J; sub >= 0; --sub) {
      float St[J + 1][L];  // St[q] = S before step sub*J + q (column n, rows j0..j0+15)
#pragma unroll
      for (int q = 0; q < L; ++q) St[0][q] = cp[static_cast<int64_t>(j0 + q) * N + n];
      for (int m = 0; m < sub * J; ++m) column_step<N>(St[0], sh, m, n, j0);
#pragma unroll
      for (int p = 0; p < J; ++p) {
#pragma unroll
        for (int q = 0; q < L; ++q) St[p + 1][q] = St[p][q];
        if (sub * J + p < len) column_step<N>(St[p + 1], sh, sub * J + p, n, j0);
      }
#pragma unroll
      for (int p = J - 1; p >= 0; --p) {
        const int m = sub * J + p;
        if (m >= len) continue;  // uniform over the block
        const float dyn = sh[B_DY][m][n], rn = sh[B_R][m][n];
        float pu = 0.f, pv = 0.f, pk = 0.f, pb = 0.f, pr = 0.f, pd = 0.f;
#pragma unroll
        for (int q = 0; q < L; ++q) {
          dSr[q] += dyn * sh[B_R][m][j0 + q];  // dS_t += dy_t r_t^T (both copies)
          dSc[q] += sh[B_DY][m][j0 + q] * rn;
          pu += dSr[q] * sh[B_B][m][j0 + q];
          pv += dSr[q] * sh[B_K][m][j0 + q];
          pk += dSc[q] * sh[B_V][m][j0 + q];
          pb += dSc[q] * sh[B_SA][m][j0 + q];
          pr += St[p + 1][q] * sh[B_DY][m][j0 + q];
          pd += St[p][q] * dSc[q];
        }
        pu = group_sum<G>(pu);
        pv = group_sum<G>(pv);
        pk = group_sum<G>(pk);
        pb = group_sum<G>(pb);
        pr = group_sum<G>(pr);
        pd = group_sum<G>(pd);
        if (j0 == 0) U[n] = pu;
        __syncthreads();
        float pa = 0.f;
#pragma unroll
        for (int q = 0; q < L; ++q) pa += St[p][q] * U[j0 + q];
        pa = group_sum<G>(pa);
        if (j0 == 0) {
          const int64_t idx = at(T, H, bi, t0 + m, h, N) + n;
          store(gr + idx, pr);
          store(gw + idx, pd * sh[B_F][m][n]);
          store(gk + idx, pk);
          store(gv + idx, pv);
          store(ga + idx, pa);
          store(gb + idx, pb);
        }
        const float dn = sh[B_D][m][n], an = sh[B_A][m][n];
#pragma unroll
        for (int q = 0; q < L; ++q) {  // dS_{t-1} = dS_t diag(d_t) + u a_t^T
          dSr[q] = dSr[q] * sh[B_D][m][j0 + q] + pu * sh[B_A][m][j0 + q];
          dSc[q] = dSc[q] * dn + U[j0 + q] * an;
        }
        __syncthreads();  // U is rewritten by the next step
      }
    }
  }
#pragma unroll
  for (int q = 0; q < L; ++q) gs_in[sbase + static_cast<int64_t>(j0 + q) * N + n] = dSc[q];
}

}  // namespace wkv7

#ifndef WKV_HOST_EMULATION
namespace {

template <typename io_t, int N>
void forward_n(int B, int T, int H, const void* const* in, const float* s_in, void* y,
               float* s_out, float* ckpt, float* sa, cudaStream_t stream) {
  const auto* p = reinterpret_cast<const io_t* const*>(in);
  wkv7::wkv7_forward_kernel<io_t, N><<<B * H, wkv7::Shape<N>::THREADS, 0, stream>>>(
      T, H, p[0], p[1], p[2], p[3], p[4], p[5], s_in, static_cast<io_t*>(y), s_out, ckpt, sa);
}

template <typename io_t, int N>
void backward_n(int B, int T, int H, const void* const* in, const float* ckpt, const float* sa,
                const void* gy, const float* gs, void* const* out, float* gs_in,
                cudaStream_t stream) {
  const auto* p = reinterpret_cast<const io_t* const*>(in);
  auto* o = reinterpret_cast<io_t* const*>(out);
  wkv7::wkv7_backward_kernel<io_t, N><<<B * H, wkv7::Shape<N>::THREADS, 0, stream>>>(
      T, H, p[0], p[1], p[2], p[3], p[4], p[5], ckpt, sa, static_cast<const io_t*>(gy), gs,
      o[0], o[1], o[2], o[3], o[4], o[5], gs_in);
}

}  // namespace

// Launchers called by kernels/wkv7_cuda_bind.cpp (plain pointers: no torch headers in nvcc).
// in = {r, w, k, v, a, b}; out = {gr, gw, gk, gv, ga, gb}. Returns false for an unsupported N.
bool wkv7_cuda_forward(int B, int T, int H, int N, const void* const* in, const float* s_in,
                       void* y, float* s_out, float* ckpt, float* sa, bool bf16,
                       cudaStream_t stream) {
  using bf = __nv_bfloat16;
  switch (N) {
    case 16: (bf16 ? forward_n<bf, 16> : forward_n<float, 16>)(B, T, H, in, s_in, y, s_out, ckpt, sa, stream); return true;
    case 32: (bf16 ? forward_n<bf, 32> : forward_n<float, 32>)(B, T, H, in, s_in, y, s_out, ckpt, sa, stream); return true;
    case 64: (bf16 ? forward_n<bf, 64> : forward_n<float, 64>)(B, T, H, in, s_in, y, s_out, ckpt, sa, stream); return true;
    default: return false;
  }
}

bool wkv7_cuda_backward(int B, int T, int H, int N, const void* const* in, const float* ckpt,
                        const float* sa, const void* gy, const float* gs, void* const* out,
                        float* gs_in, bool bf16, cudaStream_t stream) {
  using bf = __nv_bfloat16;
  switch (N) {
    case 16: (bf16 ? backward_n<bf, 16> : backward_n<float, 16>)(B, T, H, in, ckpt, sa, gy, gs, out, gs_in, stream); return true;
    case 32: (bf16 ? backward_n<bf, 32> : backward_n<float, 32>)(B, T, H, in, ckpt, sa, gy, gs, out, gs_in, stream); return true;
    case 64: (bf16 ? backward_n<bf, 64> : backward_n<float, 64>)(B, T, H, in, ckpt, sa, gy, gs, out, gs_in, stream); return true;
    default: return false;
  }
}

int wkv7_cuda_checkpoint_interval() { return wkv7::K; }
#endif  // WKV_HOST_EMULATION
