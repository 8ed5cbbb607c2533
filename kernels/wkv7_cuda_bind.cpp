// Python binding of the CUDA WKV-7 kernels (kernels/wkv7_cuda.cu): checks tensors, allocates
// outputs on the current stream's device, and launches. Kept apart from the .cu file so that
// nvcc never has to parse the torch headers.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <vector>

bool wkv7_cuda_forward(int B, int T, int H, int N, const void* const* in, const float* s_in,
                       void* y, float* s_out, float* ckpt, float* sa, bool bf16,
                       cudaStream_t stream);
bool wkv7_cuda_backward(int B, int T, int H, int N, const void* const* in, const float* ckpt,
                        const float* sa, const void* gy, const float* gs, void* const* out,
                        float* gs_in, bool bf16, cudaStream_t stream);
int wkv7_cuda_checkpoint_interval();

namespace {

void check(const torch::Tensor& t, const char* name, c10::ScalarType dtype) {
  TORCH_CHECK(t.is_cuda(), "wkv7_cuda: ", name, " must be a CUDA tensor");
  TORCH_CHECK(t.is_contiguous(), "wkv7_cuda: ", name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == dtype, "wkv7_cuda: ", name, " must be ", dtype, ", got ",
              t.scalar_type());
}

// Checks the six (B, T, H, N) inputs; returns whether they are bfloat16.
bool check_inputs(const std::vector<torch::Tensor>& ins) {
  const auto io = ins[0].scalar_type();
  TORCH_CHECK(io == torch::kFloat32 || io == torch::kBFloat16,
              "wkv7_cuda: inputs must be float32 or bfloat16, got ", io);
  const char* names[] = {"r", "w", "k", "v", "a", "b"};
  for (size_t i = 0; i < ins.size(); ++i) {
    check(ins[i], names[i], io);
    TORCH_CHECK(ins[i].sizes() == ins[0].sizes(), "wkv7_cuda: ", names[i], " shape differs");
  }
  return io == torch::kBFloat16;
}

int checked_int(int64_t x, const char* what) {
  TORCH_CHECK(x <= INT32_MAX, "wkv7_cuda: ", what, " too large: ", x);
  return static_cast<int>(x);
}

}  // namespace

// (r, w, k, v, a, b, state, save) -> (y, new_state, checkpoints, sa) (last two empty unless save)
std::vector<torch::Tensor> forward(torch::Tensor r, torch::Tensor w, torch::Tensor k,
                                   torch::Tensor v, torch::Tensor a, torch::Tensor b,
                                   torch::Tensor state, bool save) {
  const std::vector<torch::Tensor> ins{r, w, k, v, a, b};
  const bool bf16 = check_inputs(ins);
  check(state, "state", torch::kFloat32);
  const c10::cuda::CUDAGuard guard(r.device());
  const int B = checked_int(r.size(0), "B"), T = checked_int(r.size(1), "T"),
            H = checked_int(r.size(2), "H"), N = checked_int(r.size(3), "N");
  checked_int(r.size(0) * r.size(2), "B*H");
  const int ck = wkv7_cuda_checkpoint_interval();
  auto y = torch::empty_like(r);
  auto s_out = torch::empty_like(state);
  auto ckpt = save ? torch::empty({B, H, (T + ck - 1) / ck, N, N}, state.options())
                   : torch::empty({0}, state.options());
  auto sa = save ? torch::empty({B, T, H, N}, state.options()) : torch::empty({0}, state.options());
  const void* in[6];
  for (int i = 0; i < 6; ++i) in[i] = ins[i].data_ptr();
  const bool ok = wkv7_cuda_forward(B, T, H, N, in, state.data_ptr<float>(), y.data_ptr(),
                                    s_out.data_ptr<float>(),
                                    save ? ckpt.data_ptr<float>() : nullptr,
                                    save ? sa.data_ptr<float>() : nullptr, bf16,
                                    c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(ok, "wkv7_cuda: head size must be 16, 32 or 64, got ", N);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {y, s_out, ckpt, sa};
}

// (r, w, k, v, a, b, state, checkpoints, sa, gy, gstate) -> (gr, gw, gk, gv, ga, gb, gstate_in)
std::vector<torch::Tensor> backward(torch::Tensor r, torch::Tensor w, torch::Tensor k,
                                    torch::Tensor v, torch::Tensor a, torch::Tensor b,
                                    torch::Tensor state, torch::Tensor ckpt, torch::Tensor sa,
                                    torch::Tensor gy, torch::Tensor gs) {
  const std::vector<torch::Tensor> ins{r, w, k, v, a, b};
  const bool bf16 = check_inputs(ins);
  check(gy, "gy", r.scalar_type());
  for (auto [t, n] : {std::pair{&state, "state"}, {&ckpt, "checkpoints"}, {&sa, "sa"},
                      {&gs, "gstate"}})
    check(*t, n, torch::kFloat32);
  const c10::cuda::CUDAGuard guard(r.device());
  const int B = checked_int(r.size(0), "B"), T = checked_int(r.size(1), "T"),
            H = checked_int(r.size(2), "H"), N = checked_int(r.size(3), "N");
  const int ck = wkv7_cuda_checkpoint_interval();
  TORCH_CHECK(ckpt.numel() == static_cast<int64_t>(B) * H * ((T + ck - 1) / ck) * N * N &&
                  sa.numel() == r.numel(),
              "wkv7_cuda: checkpoints have the wrong size (forward ran without save?)");
  std::vector<torch::Tensor> g;
  for (const auto& t : ins) g.push_back(torch::empty_like(t));
  auto gs_in = torch::empty_like(state);
  const void* in[6];
  void* out[6];
  for (int i = 0; i < 6; ++i) {
    in[i] = ins[i].data_ptr();
    out[i] = g[i].data_ptr();
  }
  const bool ok = wkv7_cuda_backward(B, T, H, N, in, ckpt.data_ptr<float>(),
                                     sa.data_ptr<float>(), gy.data_ptr(), gs.data_ptr<float>(),
                                     out, gs_in.data_ptr<float>(), bf16,
                                     c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(ok, "wkv7_cuda: head size must be 16, 32 or 64, got ", N);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  g.push_back(gs_in);
  return g;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "WKV-7 forward (CUDA)");
  m.def("backward", &backward, "WKV-7 backward (CUDA, checkpointed)");
  m.def("checkpoint_interval", &wkv7_cuda_checkpoint_interval);
}
