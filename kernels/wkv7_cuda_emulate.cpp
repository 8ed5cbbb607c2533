// Test-only binding: runs the CUDA kernels of kernels/wkv7_cuda.cu on the CPU (see
// kernels/wkv_host_emulation.h). Same Python interface as kernels/wkv7_cuda_bind.cpp, but on
// CPU tensors. Slow (one OS thread per CUDA thread); meant for small shapes in tests.
#include <torch/extension.h>  // first: the emulation macros must not reach torch's headers

#include <vector>

#define WKV_HOST_EMULATION 1
#include "wkv7_cuda.cu"

namespace {

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), "wkv7 emulation: ", name,
              " must be a contiguous CPU tensor");
}

template <typename T>
T* ptr(const torch::Tensor& t) {
  return reinterpret_cast<T*>(t.data_ptr());
}

// The kernel instantiation for (io_t, N), called as f(io_t{}, std::integral_constant<N>).
template <typename F>
void dispatch(const torch::Tensor& r, F&& f) {
  const bool bf16 = r.scalar_type() == torch::kBFloat16;
  TORCH_CHECK(bf16 || r.scalar_type() == torch::kFloat32, "wkv7 emulation: float32/bfloat16");
  switch (r.size(3)) {
    case 16: bf16 ? f(__nv_bfloat16{}, std::integral_constant<int, 16>{})
                  : f(float{}, std::integral_constant<int, 16>{}); break;
    case 32: bf16 ? f(__nv_bfloat16{}, std::integral_constant<int, 32>{})
                  : f(float{}, std::integral_constant<int, 32>{}); break;
    case 64: bf16 ? f(__nv_bfloat16{}, std::integral_constant<int, 64>{})
                  : f(float{}, std::integral_constant<int, 64>{}); break;
    default: TORCH_CHECK(false, "wkv7 emulation: head size must be 16, 32 or 64");
  }
}

}  // namespace

std::vector<torch::Tensor> forward(torch::Tensor r, torch::Tensor w, torch::Tensor k,
                                   torch::Tensor v, torch::Tensor a, torch::Tensor b,
                                   torch::Tensor state, bool save) {
  for (auto* t : {&r, &w, &k, &v, &a, &b, &state}) check(*t, "input");
  const int B = r.size(0), T = r.size(1), H = r.size(2), N = r.size(3);
  const int nck = (T + wkv7::K - 1) / wkv7::K;
  auto y = torch::empty_like(r);
  auto s_out = torch::empty_like(state);
  auto ckpt = save ? torch::empty({B, H, nck, N, N}, state.options())
                   : torch::empty({0}, state.options());
  auto sa = save ? torch::empty({B, T, H, N}, state.options()) : torch::empty({0}, state.options());
  float* cp = save ? ptr<float>(ckpt) : nullptr;
  float* sap = save ? ptr<float>(sa) : nullptr;
  dispatch(r, [&](auto io0, auto n0) {
    using io_t = decltype(io0);
    constexpr int NN = decltype(n0)::value;
    const dim3 grid{static_cast<unsigned>(B * H), 1, 1};
    const dim3 block{static_cast<unsigned>(wkv7::Shape<NN>::THREADS), 1, 1};
    emulate_launch(grid, block, [&] {
      wkv7::wkv7_forward_kernel<io_t, NN>(T, H, ptr<io_t>(r), ptr<io_t>(w), ptr<io_t>(k),
                                          ptr<io_t>(v), ptr<io_t>(a), ptr<io_t>(b),
                                          ptr<float>(state), ptr<io_t>(y), ptr<float>(s_out),
                                          cp, sap);
    });
  });
  return {y, s_out, ckpt, sa};
}

std::vector<torch::Tensor> backward(torch::Tensor r, torch::Tensor w, torch::Tensor k,
                                    torch::Tensor v, torch::Tensor a, torch::Tensor b,
                                    torch::Tensor state, torch::Tensor ckpt, torch::Tensor sa,
                                    torch::Tensor gy, torch::Tensor gs) {
  for (auto* t : {&r, &w, &k, &v, &a, &b, &state, &ckpt, &sa, &gy, &gs}) check(*t, "input");
  const int B = r.size(0), T = r.size(1), H = r.size(2), N = r.size(3);
  const int nck = (T + wkv7::K - 1) / wkv7::K;
  TORCH_CHECK(ckpt.numel() == static_cast<int64_t>(B) * H * nck * N * N && sa.numel() == r.numel(),
              "wkv7 emulation: checkpoints have the wrong size (forward ran without save?)");
  std::vector<torch::Tensor> g;
  for (auto* t : {&r, &w, &k, &v, &a, &b}) g.push_back(torch::empty_like(*t));
  auto gs_in = torch::empty_like(state);
  dispatch(r, [&](auto io0, auto n0) {
    using io_t = decltype(io0);
    constexpr int NN = decltype(n0)::value;
    const dim3 grid{static_cast<unsigned>(B * H), 1, 1};
    const dim3 block{static_cast<unsigned>(wkv7::Shape<NN>::THREADS), 1, 1};
    emulate_launch(grid, block, [&] {
      wkv7::wkv7_backward_kernel<io_t, NN>(
          T, H, ptr<io_t>(r), ptr<io_t>(w), ptr<io_t>(k), ptr<io_t>(v), ptr<io_t>(a),
          ptr<io_t>(b), ptr<float>(ckpt), ptr<float>(sa), ptr<io_t>(gy), ptr<float>(gs),
          ptr<io_t>(g[0]), ptr<io_t>(g[1]), ptr<io_t>(g[2]), ptr<io_t>(g[3]), ptr<io_t>(g[4]),
          ptr<io_t>(g[5]), ptr<float>(gs_in));
    });
  });
  g.push_back(gs_in);
  return g;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "CUDA WKV-7 forward kernel, emulated on the CPU (tests only)");
  m.def("backward", &backward, "CUDA WKV-7 backward kernel, emulated on the CPU (tests only)");
  m.def("checkpoint_interval", [] { return wkv7::K; });
}
