// Python binding of the CUDA WKV kernels (kernels/wkv4_cuda.cu): checks tensors, allocates
// outputs on the current stream's device, and launches. Kept apart from the .cu file so that
// nvcc never has to parse the torch headers.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <vector>

void wkv4_cuda_forward(int B, int T, int C, const float* w, const float* u, const void* k,
                      const void* v, const float* s_in, void* y, float* s_out, float* ckpt,
                      bool bf16, cudaStream_t stream);
void wkv4_cuda_backward(int B, int T, int C, const float* w, const float* u, const void* k,
                       const void* v, const float* s_in, const float* s_out, const float* ckpt,
                       const void* gy, const float* gs, float* gw_part, float* gu_part, void* gk,
                       void* gv, float* gs_in, bool bf16, cudaStream_t stream);
int wkv4_cuda_checkpoint_interval();

namespace {

void check(const torch::Tensor& t, const char* name, c10::ScalarType dtype) {
  TORCH_CHECK(t.is_cuda(), "wkv4_cuda: ", name, " must be a CUDA tensor");
  TORCH_CHECK(t.is_contiguous(), "wkv4_cuda: ", name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == dtype, "wkv4_cuda: ", name, " must be ", dtype, ", got ",
              t.scalar_type());
}

bool io_is_bf16(const torch::Tensor& k) {
  TORCH_CHECK(k.scalar_type() == torch::kFloat32 || k.scalar_type() == torch::kBFloat16,
              "wkv4_cuda: k/v must be float32 or bfloat16, got ", k.scalar_type());
  return k.scalar_type() == torch::kBFloat16;
}

int checked_int(int64_t x, const char* what) {
  TORCH_CHECK(x <= INT32_MAX, "wkv4_cuda: ", what, " too large: ", x);
  return static_cast<int>(x);
}

}  // namespace

// (w, u, k, v, state, save_checkpoints) -> (y, new_state, checkpoints or empty)
std::vector<torch::Tensor> forward(torch::Tensor w, torch::Tensor u, torch::Tensor k,
                                   torch::Tensor v, torch::Tensor state, bool save_ckpt) {
  const bool bf16 = io_is_bf16(k);
  check(k, "k", k.scalar_type());
  check(v, "v", k.scalar_type());
  for (auto [t, n] : {std::pair{&w, "w"}, {&u, "u"}, {&state, "state"}})
    check(*t, n, torch::kFloat32);
  const c10::cuda::CUDAGuard guard(k.device());
  const int B = checked_int(k.size(0), "B"), T = checked_int(k.size(1), "T"),
            C = checked_int(k.size(2), "C");
  auto y = torch::empty_like(k);
  auto s_out = torch::empty_like(state);
  const int ck = wkv4_cuda_checkpoint_interval();
  auto ckpt = save_ckpt ? torch::empty({B, (T + ck - 1) / ck, 3, C}, state.options())
                        : torch::empty({0}, state.options());
  wkv4_cuda_forward(B, T, C, w.data_ptr<float>(), u.data_ptr<float>(), k.data_ptr(), v.data_ptr(),
                   state.data_ptr<float>(), y.data_ptr(), s_out.data_ptr<float>(),
                   save_ckpt ? ckpt.data_ptr<float>() : nullptr, bf16,
                   c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {y, s_out, ckpt};
}

// (w, u, k, v, state, new_state, checkpoints, gy, gstate) ->
//     (gw per batch row, gu per batch row, gk, gv, gstate)
std::vector<torch::Tensor> backward(torch::Tensor w, torch::Tensor u, torch::Tensor k,
                                    torch::Tensor v, torch::Tensor state, torch::Tensor s_out,
                                    torch::Tensor ckpt, torch::Tensor gy, torch::Tensor gs) {
  const bool bf16 = io_is_bf16(k);
  check(k, "k", k.scalar_type());
  check(v, "v", k.scalar_type());
  check(gy, "gy", k.scalar_type());
  for (auto [t, n] : {std::pair{&w, "w"}, {&u, "u"}, {&state, "state"}, {&s_out, "new_state"},
                      {&ckpt, "checkpoints"}, {&gs, "gstate"}})
    check(*t, n, torch::kFloat32);
  const c10::cuda::CUDAGuard guard(k.device());
  const int B = checked_int(k.size(0), "B"), T = checked_int(k.size(1), "T"),
            C = checked_int(k.size(2), "C");
  const int ck = wkv4_cuda_checkpoint_interval();
  TORCH_CHECK(ckpt.numel() == static_cast<int64_t>(B) * ((T + ck - 1) / ck) * 3 * C,
              "wkv4_cuda: checkpoints have the wrong size (forward ran without save_ckpt?)");
  auto gk = torch::empty_like(k);
  auto gv = torch::empty_like(v);
  auto gs_in = torch::empty_like(state);
  auto gw = torch::empty({B, C}, state.options());
  auto gu = torch::empty({B, C}, state.options());
  wkv4_cuda_backward(B, T, C, w.data_ptr<float>(), u.data_ptr<float>(), k.data_ptr(),
                    v.data_ptr(), state.data_ptr<float>(), s_out.data_ptr<float>(),
                    ckpt.data_ptr<float>(), gy.data_ptr(), gs.data_ptr<float>(),
                    gw.data_ptr<float>(), gu.data_ptr<float>(), gk.data_ptr(), gv.data_ptr(),
                    gs_in.data_ptr<float>(), bf16, c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {gw, gu, gk, gv, gs_in};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "WKV forward (CUDA, chunked scan over T)");
  m.def("backward", &backward, "WKV backward (CUDA, chunked reverse scan over T)");
  m.def("checkpoint_interval", &wkv4_cuda_checkpoint_interval);
}
