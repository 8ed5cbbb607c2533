// RWKV-7 WKV operator, CPU backend: forward and hand-written backward, OpenMP over
// (batch, head).
//
// Per (b, h), with S the N x N state (row i = value dim, column j = key dim) and
// d_t = exp(-exp(w_t)) (docs/wkv.md, "WKV-7", has the derivation):
//   forward:  S_t = S_{t-1} diag(d_t) + (S_{t-1} a_t) b_t^T + v_t k_t^T,  y_t = S_t r_t
//   backward: with dS_t the gradient of the loss w.r.t. S_t (including y_t's part),
//     dS_t += dy_t r_t^T;  u = dS_t b_t;  sa = S_{t-1} a_t
//     dr_t = S_t^T dy_t,  dv_t = dS_t k_t,  dk_t = dS_t^T v_t,  db_t = dS_t^T sa,
//     da_t = S_{t-1}^T u,  dw_t[j] = -exp(w_t[j]) d_t[j] sum_i S_{t-1}[i,j] dS_t[i,j],
//     dS_{t-1} = dS_t diag(d_t) + u a_t^T.
// Every quantity is a pass over the rows of S / dS with a contiguous inner loop over j,
// which the compiler vectorizes; the sums over i accumulate into length-N vectors.
//
// The backward needs S_{t-1} and S_t for t = T..1. It runs the forward again keeping the
// state every K steps (T/K * N^2 values per task), then, chunk by chunk from the end,
// recomputes the chunk's K states into a scratch buffer and walks them backwards: one
// extra forward of work, O((T/K + K) N^2) memory per task, no limit on T.
//
// Compute type: float for float32/bfloat16 I/O, double for float64 I/O (gradcheck).
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr int64_t K = 16;  // checkpoint interval of the backward's recomputation

template <typename T>
inline float to_acc(T x, float) { return static_cast<float>(x); }
template <typename T>
inline double to_acc(T x, double) { return static_cast<double>(x); }

// Strides of one (b, h) task in the (B, T, H, N) layout.
struct Task {
  int64_t T, H, N, b, h;
  int64_t at(int64_t t) const { return ((b * T + t) * H + h) * N; }  // first element of step t
  int64_t state() const { return (b * H + h) * N * N; }
};

// The inputs of one step, converted to the compute type; d = exp(-exp(w)) and its
// derivative f = dd/dw = -exp(w - exp(w)) (finite for any w, where -d * exp(w) is 0 * inf).
template <typename acc_t>
struct StepIn {
  std::vector<acc_t> r, d, k, v, a, b, f;
  explicit StepIn(int64_t N) : r(N), d(N), k(N), v(N), a(N), b(N), f(N) {}
  template <typename io_t>
  void load(const io_t* const* in, int64_t off, int64_t N) {
    for (int64_t j = 0; j < N; ++j) {
      r[j] = to_acc(in[0][off + j], acc_t{});
      const acc_t w = to_acc(in[1][off + j], acc_t{}), ew = std::exp(w);
      d[j] = std::exp(-ew);
      f[j] = -std::exp(w - ew);
      k[j] = to_acc(in[2][off + j], acc_t{});
      v[j] = to_acc(in[3][off + j], acc_t{});
      a[j] = to_acc(in[4][off + j], acc_t{});
      b[j] = to_acc(in[5][off + j], acc_t{});
    }
  }
};

// One step of the recurrence on S (row-major N x N); writes y if given.
template <typename acc_t>
inline void step(acc_t* S, const StepIn<acc_t>& x, int64_t N, acc_t* y) {
  for (int64_t i = 0; i < N; ++i) {
    acc_t* row = S + i * N;
    acc_t sa = 0;
#pragma omp simd reduction(+ : sa)
    for (int64_t j = 0; j < N; ++j) sa += row[j] * x.a[j];
    const acc_t vi = x.v[i];
    acc_t yi = 0;
#pragma omp simd reduction(+ : yi)
    for (int64_t j = 0; j < N; ++j) {
      row[j] = row[j] * x.d[j] + sa * x.b[j] + vi * x.k[j];
      yi += row[j] * x.r[j];
    }
    if (y != nullptr) y[i] = yi;
  }
}

template <typename io_t, typename acc_t>
void forward_task(const io_t* const* in, const acc_t* s_in, io_t* y, acc_t* s_out,
                  const Task& tk) {
  const int64_t N = tk.N;
  std::vector<acc_t> S(s_in + tk.state(), s_in + tk.state() + N * N), yt(N);
  StepIn<acc_t> x(N);
  for (int64_t t = 0; t < tk.T; ++t) {
    const int64_t off = tk.at(t);
    x.load(in, off, N);
    step(S.data(), x, N, yt.data());
    for (int64_t i = 0; i < N; ++i) y[off + i] = static_cast<io_t>(yt[i]);
  }
  std::copy(S.begin(), S.end(), s_out + tk.state());
}

// Gradient accumulators of one step (sums over the rows i).
template <typename acc_t>
struct StepGrad {
  std::vector<acc_t> dr, dk, db, dd, da, dv;
  explicit StepGrad(int64_t N) : dr(N), dk(N), db(N), dd(N), da(N), dv(N) {}
  void zero() {
    for (auto* g : {&dr, &dk, &db, &dd, &da, &dv}) std::fill(g->begin(), g->end(), acc_t(0));
  }
};

// Backward through step t: S_prev = S_{t-1}, S_cur = S_t; dS holds dL/dS_t without y_t's
// part on entry and dL/dS_{t-1} on exit.
template <typename acc_t>
void backward_step(const acc_t* S_prev, const acc_t* S_cur, acc_t* dS, const StepIn<acc_t>& x,
                   const acc_t* dy, StepGrad<acc_t>& g, int64_t N) {
  g.zero();
  for (int64_t i = 0; i < N; ++i) {
    acc_t* dSi = dS + i * N;
    const acc_t* Sp = S_prev + i * N;
    const acc_t* Sc = S_cur + i * N;
    const acc_t gi = dy[i];
    acc_t dv = 0, u = 0, sa = 0;
#pragma omp simd reduction(+ : dv, u, sa)
    for (int64_t j = 0; j < N; ++j) {
      dSi[j] += gi * x.r[j];
      dv += dSi[j] * x.k[j];
      u += dSi[j] * x.b[j];
      sa += Sp[j] * x.a[j];
    }
    g.dv[i] = dv;
    const acc_t vi = x.v[i];
#pragma omp simd
    for (int64_t j = 0; j < N; ++j) {
      g.dk[j] += dSi[j] * vi;
      g.db[j] += dSi[j] * sa;
      g.dr[j] += Sc[j] * gi;
      g.dd[j] += Sp[j] * dSi[j];
      g.da[j] += Sp[j] * u;
      dSi[j] = dSi[j] * x.d[j] + u * x.a[j];
    }
  }
}

template <typename io_t, typename acc_t>
void backward_task(const io_t* const* in, const acc_t* s_in, const io_t* gy, const acc_t* gs,
                   io_t* const* out, acc_t* gs_in, const Task& tk, std::vector<acc_t>& ckpt,
                   std::vector<acc_t>& chunk) {
  const int64_t N = tk.N, NN = N * N, T = tk.T;
  const int64_t nck = (T + K - 1) / K;
  ckpt.resize(static_cast<size_t>(std::max<int64_t>(nck, 1) * NN));
  chunk.resize(static_cast<size_t>((K + 1) * NN));
  StepIn<acc_t> x(N);
  // Pass 1: the forward again, keeping the state before every K-th step.
  std::vector<acc_t> S(s_in + tk.state(), s_in + tk.state() + NN);
  for (int64_t t = 0; t < T; ++t) {
    if (t % K == 0) std::copy(S.begin(), S.end(), ckpt.begin() + (t / K) * NN);
    x.load(in, tk.at(t), N);
    step(S.data(), x, N, static_cast<acc_t*>(nullptr));
  }
  // Pass 2: chunks from the last; each recomputes its states, then walks them back.
  std::vector<acc_t> dS(gs + tk.state(), gs + tk.state() + NN), dy(N);
  StepGrad<acc_t> g(N);
  for (int64_t c = nck - 1; c >= 0; --c) {
    const int64_t t0 = c * K, len = std::min(K, T - t0);
    std::copy(ckpt.begin() + c * NN, ckpt.begin() + (c + 1) * NN, chunk.begin());
    for (int64_t m = 0; m < len; ++m) {
      std::copy(chunk.begin() + m * NN, chunk.begin() + (m + 1) * NN,
                chunk.begin() + (m + 1) * NN);
      x.load(in, tk.at(t0 + m), N);
      step(chunk.data() + (m + 1) * NN, x, N, static_cast<acc_t*>(nullptr));
    }
    for (int64_t m = len - 1; m >= 0; --m) {
      const int64_t off = tk.at(t0 + m);
      x.load(in, off, N);
      for (int64_t i = 0; i < N; ++i) dy[i] = to_acc(gy[off + i], acc_t{});
      backward_step(chunk.data() + m * NN, chunk.data() + (m + 1) * NN, dS.data(), x,
                    dy.data(), g, N);
      for (int64_t j = 0; j < N; ++j) {
        out[0][off + j] = static_cast<io_t>(g.dr[j]);
        out[1][off + j] = static_cast<io_t>(g.dd[j] * x.f[j]);
        out[2][off + j] = static_cast<io_t>(g.dk[j]);
        out[3][off + j] = static_cast<io_t>(g.dv[j]);
        out[4][off + j] = static_cast<io_t>(g.da[j]);
        out[5][off + j] = static_cast<io_t>(g.db[j]);
      }
    }
  }
  std::copy(dS.begin(), dS.end(), gs_in + tk.state());
}

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "wkv7_cpu: ", name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), "wkv7_cpu: ", name, " must be contiguous");
}

template <typename F>
void dispatch(const torch::Tensor& r, const torch::Tensor& state, F&& f) {
  const auto io = r.scalar_type();
  const auto st = state.scalar_type();
  if (io == torch::kFloat32 && st == torch::kFloat32) {
    f(float{}, float{});
  } else if (io == torch::kBFloat16 && st == torch::kFloat32) {
    f(c10::BFloat16{}, float{});
  } else if (io == torch::kFloat64 && st == torch::kFloat64) {
    f(double{}, double{});
  } else {
    TORCH_CHECK(false, "wkv7_cpu: unsupported dtypes: inputs ", io, ", state ", st);
  }
}

template <typename io_t>
std::vector<const io_t*> ptrs(const std::vector<torch::Tensor>& ts) {
  std::vector<const io_t*> p;
  for (const auto& t : ts) p.push_back(reinterpret_cast<const io_t*>(t.data_ptr()));
  return p;
}

}  // namespace

// (r, w, k, v, a, b, state) -> (y, new_state)
std::vector<torch::Tensor> forward(torch::Tensor r, torch::Tensor w, torch::Tensor k,
                                   torch::Tensor v, torch::Tensor a, torch::Tensor b,
                                   torch::Tensor state) {
  const std::vector<torch::Tensor> ins{r, w, k, v, a, b};
  for (const auto& t : ins) check(t, "input");
  check(state, "state");
  const int64_t B = r.size(0), T = r.size(1), H = r.size(2), N = r.size(3);
  auto y = torch::empty_like(r);
  auto s_out = torch::empty_like(state);
  dispatch(r, state, [&](auto io0, auto acc0) {
    using io_t = decltype(io0);
    using acc_t = decltype(acc0);
    const auto in = ptrs<io_t>(ins);
    io_t* yp = reinterpret_cast<io_t*>(y.data_ptr());
    const acc_t* sp = state.data_ptr<acc_t>();
    acc_t* sop = s_out.data_ptr<acc_t>();
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < B * H; ++task) {
      forward_task<io_t, acc_t>(in.data(), sp, yp, sop, Task{T, H, N, task / H, task % H});
    }
  });
  return {y, s_out};
}

// (r, w, k, v, a, b, state, gy, gstate) -> (gr, gw, gk, gv, ga, gb, gstate_in)
std::vector<torch::Tensor> backward(torch::Tensor r, torch::Tensor w, torch::Tensor k,
                                    torch::Tensor v, torch::Tensor a, torch::Tensor b,
                                    torch::Tensor state, torch::Tensor gy, torch::Tensor gs) {
  const std::vector<torch::Tensor> ins{r, w, k, v, a, b};
  for (const auto& t : ins) check(t, "input");
  check(state, "state");
  check(gy, "gy");
  check(gs, "gstate");
  TORCH_CHECK(gy.scalar_type() == r.scalar_type() && gs.scalar_type() == state.scalar_type(),
              "wkv7_cpu: gradient dtypes must match the outputs'");
  const int64_t B = r.size(0), T = r.size(1), H = r.size(2), N = r.size(3);
  std::vector<torch::Tensor> outs;
  for (const auto& t : ins) outs.push_back(torch::empty_like(t));
  auto gs_in = torch::empty_like(state);
  dispatch(r, state, [&](auto io0, auto acc0) {
    using io_t = decltype(io0);
    using acc_t = decltype(acc0);
    const auto in = ptrs<io_t>(ins);
    std::vector<io_t*> op;
    for (auto& t : outs) op.push_back(reinterpret_cast<io_t*>(t.data_ptr()));
    const io_t* gyp = reinterpret_cast<const io_t*>(gy.data_ptr());
    const acc_t* sp = state.data_ptr<acc_t>();
    const acc_t* gsp = gs.data_ptr<acc_t>();
    acc_t* gsip = gs_in.data_ptr<acc_t>();
#pragma omp parallel
    {
      std::vector<acc_t> ckpt, chunk;  // per-thread scratch, reused across tasks
#pragma omp for schedule(static)
      for (int64_t task = 0; task < B * H; ++task) {
        backward_task<io_t, acc_t>(in.data(), sp, gyp, gsp, op.data(), gsip,
                                   Task{T, H, N, task / H, task % H}, ckpt, chunk);
      }
    }
  });
  outs.push_back(gs_in);
  return outs;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "WKV-7 forward (CPU): (r, w, k, v, a, b, state) -> (y, state)");
  m.def("backward", &backward,
        "WKV-7 backward (CPU): (r, w, k, v, a, b, state, gy, gstate) -> "
        "(gr, gw, gk, gv, ga, gb, gstate)");
}
