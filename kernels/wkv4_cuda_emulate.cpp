// Test-only binding: runs the CUDA kernels of kernels/wkv4_cuda.cu on the CPU (see
// kernels/wkv_host_emulation.h). Same Python interface as kernels/wkv4_cuda_bind.cpp, but on
// CPU tensors. Slow (one OS thread per CUDA thread); meant for small shapes in tests.
#include <torch/extension.h>  // first: the emulation macros must not reach torch's headers

#include <vector>

#define WKV_HOST_EMULATION 1
#include "wkv4_cuda.cu"

namespace {

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), "wkv4 emulation: ", name,
              " must be a contiguous CPU tensor");
}

template <typename T>
T* ptr(const torch::Tensor& t) {
  return reinterpret_cast<T*>(t.data_ptr());
}

}  // namespace

std::vector<torch::Tensor> forward(torch::Tensor w, torch::Tensor u, torch::Tensor k,
                                   torch::Tensor v, torch::Tensor state, bool save_ckpt) {
  for (auto* t : {&w, &u, &k, &v, &state}) check(*t, "input");
  const bool bf16 = k.scalar_type() == torch::kBFloat16;
  const int B = k.size(0), T = k.size(1), C = k.size(2);
  auto y = torch::empty_like(k);
  auto s_out = torch::empty_like(state);
  auto ckpt = save_ckpt ? torch::empty({B, (T + SEG - 1) / SEG, 3, C}, state.options())
                        : torch::empty({0}, state.options());
  float* cp = save_ckpt ? ptr<float>(ckpt) : nullptr;
  const dim3 grid{static_cast<unsigned>((C + CH - 1) / CH), static_cast<unsigned>(B), 1};
  const dim3 block{CH, NSEG_F, 1};
  if (bf16) {
    using bf = __nv_bfloat16;
    emulate_launch(grid, block, [&] {
      wkv4_forward_kernel<bf>(T, C, ptr<float>(w), ptr<float>(u), ptr<bf>(k), ptr<bf>(v),
                             ptr<float>(state), ptr<bf>(y), ptr<float>(s_out), cp);
    });
  } else {
    emulate_launch(grid, block, [&] {
      wkv4_forward_kernel<float>(T, C, ptr<float>(w), ptr<float>(u), ptr<float>(k),
                                ptr<float>(v), ptr<float>(state), ptr<float>(y),
                                ptr<float>(s_out), cp);
    });
  }
  return {y, s_out, ckpt};
}

std::vector<torch::Tensor> backward(torch::Tensor w, torch::Tensor u, torch::Tensor k,
                                    torch::Tensor v, torch::Tensor state, torch::Tensor s_out,
                                    torch::Tensor ckpt, torch::Tensor gy, torch::Tensor gs) {
  for (auto* t : {&w, &u, &k, &v, &state, &s_out, &ckpt, &gy, &gs}) check(*t, "input");
  const bool bf16 = k.scalar_type() == torch::kBFloat16;
  const int B = k.size(0), T = k.size(1), C = k.size(2);
  auto gk = torch::empty_like(k);
  auto gv = torch::empty_like(v);
  auto gs_in = torch::empty_like(state);
  auto gw = torch::empty({B, C}, state.options());
  auto gu = torch::empty({B, C}, state.options());
  const dim3 grid{static_cast<unsigned>((C + CH - 1) / CH), static_cast<unsigned>(B), 1};
  const dim3 block{CH, NSEG_B, 1};
  if (bf16) {
    using bf = __nv_bfloat16;
    emulate_launch(grid, block, [&] {
      wkv4_backward_kernel<bf>(T, C, ptr<float>(w), ptr<float>(u), ptr<bf>(k), ptr<bf>(v),
                              ptr<float>(state), ptr<float>(s_out), ptr<float>(ckpt),
                              ptr<bf>(gy), ptr<float>(gs), ptr<float>(gw), ptr<float>(gu),
                              ptr<bf>(gk), ptr<bf>(gv), ptr<float>(gs_in));
    });
  } else {
    emulate_launch(grid, block, [&] {
      wkv4_backward_kernel<float>(T, C, ptr<float>(w), ptr<float>(u), ptr<float>(k),
                                 ptr<float>(v), ptr<float>(state), ptr<float>(s_out),
                                 ptr<float>(ckpt), ptr<float>(gy), ptr<float>(gs),
                                 ptr<float>(gw), ptr<float>(gu), ptr<float>(gk),
                                 ptr<float>(gv), ptr<float>(gs_in));
    });
  }
  return {gw, gu, gk, gv, gs_in};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "CUDA WKV forward kernel, emulated on the CPU (tests only)");
  m.def("backward", &backward, "CUDA WKV backward kernel, emulated on the CPU (tests only)");
  m.def("checkpoint_interval", [] { return SEG; });
}
