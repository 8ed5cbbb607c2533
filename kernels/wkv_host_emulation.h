// Plain-C++ stand-ins for the CUDA built-ins that kernels/wkv4_cuda.cu uses, so that its
// kernels -- the very same source -- can run on a CPU in tests (tests/test_wkv.py and
// tests/test_wkv7.py, through kernels/wkv4_cuda_emulate.cpp and kernels/wkv7_cuda_emulate.cpp). Why: not every session has a GPU, and the chunked scan's
// indexing, tiling and barriers are exactly the parts a CPU emulation of the *algorithm*
// cannot check.
//
// Model: one std::thread per CUDA thread of one block; blocks run one after another, so
// `__shared__` can be a function-local static; `__syncthreads()` is a pthread barrier across
// the block's threads. Warp shuffles exchange through a block-wide buffer between two such
// barriers, so a kernel must call them uniformly in the block (ours do; on a GPU they only
// need to be uniform in the warp). bfloat16 is a 16-bit struct with round-to-nearest-even
// conversion.
#pragma once

#include <pthread.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

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
inline thread_local dim3 blockDim;
inline pthread_barrier_t* g_block_barrier = nullptr;
inline float* g_shuffle = nullptr;  // one slot per thread of the running block

inline void __syncthreads() { pthread_barrier_wait(g_block_barrier); }

// __shfl_xor_sync: the value of lane (lane ^ lane_mask) of the same warp.
inline float __shfl_xor_sync(unsigned /*mask*/, float x, int lane_mask) {
  const unsigned tid = threadIdx.x + threadIdx.y * blockDim.x;
  __syncthreads();  // every thread has read the previous exchange
  g_shuffle[tid] = x;
  __syncthreads();
  return g_shuffle[(tid & ~31u) | ((tid & 31u) ^ static_cast<unsigned>(lane_mask))];
}
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

// Run `kernel` over a grid, one block at a time, one std::thread per CUDA thread.
template <typename F>
void emulate_launch(dim3 grid, dim3 block, F&& kernel) {
  const unsigned n = block.x * block.y;
  std::vector<float> shuffle(n);
  g_shuffle = shuffle.data();
  for (unsigned by = 0; by < grid.y; ++by) {
    for (unsigned bx = 0; bx < grid.x; ++bx) {
      pthread_barrier_t barrier;
      pthread_barrier_init(&barrier, nullptr, n);
      g_block_barrier = &barrier;
      std::vector<std::thread> threads;
      threads.reserve(n);
      for (unsigned ty = 0; ty < block.y; ++ty) {
        for (unsigned tx = 0; tx < block.x; ++tx) {
          threads.emplace_back([=, &kernel] {
            threadIdx = dim3{tx, ty, 1};
            blockIdx = dim3{bx, by, 1};
            blockDim = block;
            kernel();
          });
        }
      }
      for (auto& t : threads) t.join();
      pthread_barrier_destroy(&barrier);
    }
  }
  g_shuffle = nullptr;
}
