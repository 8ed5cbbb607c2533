// Plain-C++ stand-ins for the CUDA built-ins that kernels/wkv_cuda.cu uses, so that its
// kernels -- the very same source -- can run on a CPU in tests (tests/test_wkv.py, through
// kernels/wkv_cuda_emulate.cpp). Why: not every session has a GPU, and the chunked scan's
// indexing, tiling and barriers are exactly the parts a CPU emulation of the *algorithm*
// cannot check.
//
// Model: one std::thread per CUDA thread of one block; blocks run one after another, so
// `__shared__` can be a function-local static; `__syncthreads()` is a pthread barrier across
// the block's threads. bfloat16 is a 16-bit struct with round-to-nearest-even conversion.
#pragma once

#include <pthread.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};
inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline pthread_barrier_t* g_block_barrier = nullptr;

inline void __syncthreads() { pthread_barrier_wait(g_block_barrier); }
inline float __ldg(const float* p) { return *p; }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }

struct __nv_bfloat16 {
  uint16_t bits;
};
inline float __bfloat162float(__nv_bfloat16 b) {
  const uint32_t u = static_cast<uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even (finite inputs)
  return __nv_bfloat16{static_cast<uint16_t>(u >> 16)};
}
