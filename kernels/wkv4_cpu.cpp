// RWKV-4 WKV operator, CPU backend: forward and backward, OpenMP over (batch, channel block).
//
// The math (and the notation aa/bb/pp, e1/e2, r1/r2, G) is derived in docs/wkv.md. Every
// exponent passed to exp() is <= 0, so nothing overflows whatever the size of k.
//
// Layout: k, v, y are (B, T, C) contiguous; state is (B, 3, C) = (aa, bb, pp). A task is one
// batch row and a block of CB consecutive channels; the inner loop over the block is
// contiguous in memory and written for `omp simd` vectorization (one exp per step and per
// state update, with a polynomial exp that the compiler can vectorize).
//
// Compute type: float for float32/bfloat16 I/O, double for float64 I/O (gradcheck).
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int CB = 16;  // channels per task: one 64-byte cache line of floats

// exp(x) for x <= 0 in float: Cody-Waite range reduction + degree-7 Taylor polynomial
// (relative error ~1e-7), branch-free so the channel loop vectorizes. Below -87 the
// result would be denormal; we return 0, which is what the max-tracking form needs.
inline float exp_nonpos(float x) {
  const float xc = std::max(x, -87.0f);
  const float n = std::nearbyint(xc * 1.44269504088896341f);
  const float r = (xc - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return x < -87.0f ? 0.0f : p * scale;
}
inline double exp_nonpos(double x) { return std::exp(x); }

template <typename T>
inline float to_acc(T x, float) { return static_cast<float>(x); }
template <typename T>
inline double to_acc(T x, double) { return static_cast<double>(x); }

// Per-step values kept by the backward's forward recomputation (one row of CB each).
template <typename acc_t>
struct Step {
  acc_t aa[CB], bb[CB], y[CB], r1[CB], r2[CB], e1[CB], e2[CB], kbranch[CB];
};

template <typename io_t, typename acc_t>
void forward_task(const acc_t* w, const acc_t* u, const io_t* k, const io_t* v,
                  const acc_t* s_in, io_t* y, acc_t* s_out, int64_t T, int64_t C,
                  int64_t b, int64_t c0) {
  const int n = static_cast<int>(std::min<int64_t>(CB, C - c0));
  acc_t aa[CB], bb[CB], pp[CB], ww_[CB], uu[CB];
  const acc_t* s = s_in + b * 3 * C;
  for (int j = 0; j < n; ++j) {
    aa[j] = s[c0 + j]; bb[j] = s[C + c0 + j]; pp[j] = s[2 * C + c0 + j];
    ww_[j] = w[c0 + j]; uu[j] = u[c0 + j];
  }
  for (int64_t t = 0; t < T; ++t) {
    const int64_t base = (b * T + t) * C + c0;
#pragma omp simd
    for (int j = 0; j < n; ++j) {
      const acc_t kk = to_acc(k[base + j], acc_t{}), vv = to_acc(v[base + j], acc_t{});
      // output: average of the state and the current token (bonus u)
      acc_t x = uu[j] + kk;
      acc_t e = exp_nonpos(-std::abs(pp[j] - x));
      bool st = pp[j] >= x;
      acc_t e1 = st ? acc_t(1) : e, e2 = st ? e : acc_t(1);
      y[base + j] = static_cast<io_t>((e1 * aa[j] + e2 * vv) / (e1 * bb[j] + e2));
      // state update: decay by w, add the current token
      x = ww_[j] + pp[j];
      e = exp_nonpos(-std::abs(x - kk));
      st = x >= kk;
      e1 = st ? acc_t(1) : e; e2 = st ? e : acc_t(1);
      aa[j] = e1 * aa[j] + e2 * vv;
      bb[j] = e1 * bb[j] + e2;
      pp[j] = st ? x : kk;
    }
  }
  acc_t* so = s_out + b * 3 * C;
  for (int j = 0; j < n; ++j) {
    so[c0 + j] = aa[j]; so[C + c0 + j] = bb[j]; so[2 * C + c0 + j] = pp[j];
  }
}

template <typename io_t, typename acc_t>
void backward_task(const acc_t* w, const acc_t* u, const io_t* k, const io_t* v,
                   const acc_t* s_in, const acc_t* s_out, const io_t* gy, const acc_t* gs,
                   acc_t* gw, acc_t* gu, io_t* gk, io_t* gv, acc_t* gs_in, int64_t T,
                   int64_t C, int64_t b, int64_t c0, std::vector<Step<acc_t>>& steps) {
  const int n = static_cast<int>(std::min<int64_t>(CB, C - c0));
  steps.resize(static_cast<size_t>(T));
  acc_t aa[CB], bb[CB], pp[CB], ww_[CB], uu[CB];
  const acc_t* s = s_in + b * 3 * C;
  for (int j = 0; j < n; ++j) {
    aa[j] = s[c0 + j]; bb[j] = s[C + c0 + j]; pp[j] = s[2 * C + c0 + j];
    ww_[j] = w[c0 + j]; uu[j] = u[c0 + j];
  }
  // Pass 1: recompute the forward, keeping what the reverse pass needs.
  for (int64_t t = 0; t < T; ++t) {
    const int64_t base = (b * T + t) * C + c0;
    Step<acc_t>& st_ = steps[t];
#pragma omp simd
    for (int j = 0; j < n; ++j) {
      const acc_t kk = to_acc(k[base + j], acc_t{}), vv = to_acc(v[base + j], acc_t{});
      st_.aa[j] = aa[j]; st_.bb[j] = bb[j];
      acc_t x = uu[j] + kk;
      acc_t e = exp_nonpos(-std::abs(pp[j] - x));
      bool st = pp[j] >= x;
      acc_t e1 = st ? acc_t(1) : e, e2 = st ? e : acc_t(1);
      const acc_t d = e1 * bb[j] + e2;
      st_.y[j] = (e1 * aa[j] + e2 * vv) / d;
      st_.r1[j] = e1 / d;
      st_.r2[j] = e2 / d;
      x = ww_[j] + pp[j];
      e = exp_nonpos(-std::abs(x - kk));
      st = x >= kk;
      e1 = st ? acc_t(1) : e; e2 = st ? e : acc_t(1);
      st_.e1[j] = e1; st_.e2[j] = e2; st_.kbranch[j] = st ? acc_t(0) : acc_t(1);
      aa[j] = e1 * aa[j] + e2 * vv;
      bb[j] = e1 * bb[j] + e2;
      pp[j] = st ? x : kk;
    }
  }
  // Pass 2: reverse. ga/gb = dL/daa, dL/dbb of the state after step t (pp held fixed);
  // G = the explicit dL/dpp of the final state, routed along the max path of pp.
  acc_t ga[CB], gb[CB], G[CB], gwa[CB], gua[CB], alive[CB];
  const acc_t* g = gs + b * 3 * C;
  const acc_t* so = s_out + b * 3 * C;
  for (int j = 0; j < n; ++j) {
    ga[j] = g[c0 + j]; gb[j] = g[C + c0 + j];
    G[j] = g[2 * C + c0 + j] - ga[j] * so[c0 + j] - gb[j] * so[C + c0 + j];
    gwa[j] = 0; gua[j] = 0; alive[j] = 1;
  }
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t base = (b * T + t) * C + c0;
    const Step<acc_t>& st_ = steps[t];
#pragma omp simd
    for (int j = 0; j < n; ++j) {
      const acc_t vv = to_acc(v[base + j], acc_t{}), g_y = to_acc(gy[base + j], acc_t{});
      const acc_t yy = st_.y[j];
      const acc_t direct = g_y * st_.r2[j] * (vv - yy);
      const acc_t via_k = alive[j] * st_.kbranch[j] * G[j];
      gk[base + j] = static_cast<io_t>(direct + st_.e2[j] * (vv * ga[j] + gb[j]) + via_k);
      gv[base + j] = static_cast<io_t>(g_y * st_.r2[j] + st_.e2[j] * ga[j]);
      gua[j] += direct;
      gwa[j] += st_.e1[j] * (ga[j] * st_.aa[j] + gb[j] * st_.bb[j]) +
                alive[j] * (acc_t(1) - st_.kbranch[j]) * G[j];
      alive[j] *= acc_t(1) - st_.kbranch[j];
      const acc_t na = g_y * st_.r1[j] + st_.e1[j] * ga[j];
      const acc_t nb = -g_y * st_.r1[j] * yy + st_.e1[j] * gb[j];
      ga[j] = na; gb[j] = nb;
    }
  }
  acc_t* gsi = gs_in + b * 3 * C;
  for (int j = 0; j < n; ++j) {
    gsi[c0 + j] = ga[j];
    gsi[C + c0 + j] = gb[j];
    gsi[2 * C + c0 + j] = ga[j] * s[c0 + j] + gb[j] * s[C + c0 + j] + alive[j] * G[j];
    gw[b * C + c0 + j] = gwa[j];
    gu[b * C + c0 + j] = gua[j];
  }
}

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "wkv4_cpu: ", name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), "wkv4_cpu: ", name, " must be contiguous");
}

template <typename F>
void dispatch(const torch::Tensor& k, F&& f) {
  if (k.scalar_type() == torch::kFloat32) {
    f(float{}, float{});
  } else if (k.scalar_type() == torch::kBFloat16) {
    f(c10::BFloat16{}, float{});
  } else if (k.scalar_type() == torch::kFloat64) {
    f(double{}, double{});
  } else {
    TORCH_CHECK(false, "wkv4_cpu: unsupported dtype ", k.scalar_type());
  }
}

std::vector<torch::Tensor> forward(torch::Tensor w, torch::Tensor u, torch::Tensor k,
                                   torch::Tensor v, torch::Tensor state) {
  for (auto* p : {&w, &u, &k, &v, &state}) check(*p, "input");
  const int64_t B = k.size(0), T = k.size(1), C = k.size(2);
  auto y = torch::empty_like(k);
  auto s_out = torch::empty_like(state);
  const int64_t nblk = (C + CB - 1) / CB;
  dispatch(k, [&](auto io0, auto acc0) {
    using io_t = decltype(io0);
    using acc_t = decltype(acc0);
    const acc_t* wp = w.data_ptr<acc_t>();
    const acc_t* up = u.data_ptr<acc_t>();
    const io_t* kp = reinterpret_cast<const io_t*>(k.data_ptr());
    const io_t* vp = reinterpret_cast<const io_t*>(v.data_ptr());
    io_t* yp = reinterpret_cast<io_t*>(y.data_ptr());
    const acc_t* sp = state.data_ptr<acc_t>();
    acc_t* sop = s_out.data_ptr<acc_t>();
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < B * nblk; ++task) {
      forward_task<io_t, acc_t>(wp, up, kp, vp, sp, yp, sop, T, C, task / nblk,
                                (task % nblk) * CB);
    }
  });
  return {y, s_out};
}

// Returns per-batch-row partial gw, gu (B, C): Python sums them in a fixed order.
std::vector<torch::Tensor> backward(torch::Tensor w, torch::Tensor u, torch::Tensor k,
                                    torch::Tensor v, torch::Tensor state, torch::Tensor s_out,
                                    torch::Tensor gy, torch::Tensor gs) {
  for (auto* p : {&w, &u, &k, &v, &state, &s_out, &gy, &gs}) check(*p, "input");
  const int64_t B = k.size(0), T = k.size(1), C = k.size(2);
  auto gk = torch::empty_like(k);
  auto gv = torch::empty_like(v);
  auto gs_in = torch::empty_like(state);
  auto gw = torch::empty({B, C}, state.options());
  auto gu = torch::empty({B, C}, state.options());
  const int64_t nblk = (C + CB - 1) / CB;
  dispatch(k, [&](auto io0, auto acc0) {
    using io_t = decltype(io0);
    using acc_t = decltype(acc0);
    const acc_t* wp = w.data_ptr<acc_t>();
    const acc_t* up = u.data_ptr<acc_t>();
    const io_t* kp = reinterpret_cast<const io_t*>(k.data_ptr());
    const io_t* vp = reinterpret_cast<const io_t*>(v.data_ptr());
    const io_t* gyp = reinterpret_cast<const io_t*>(gy.data_ptr());
    io_t* gkp = reinterpret_cast<io_t*>(gk.data_ptr());
    io_t* gvp = reinterpret_cast<io_t*>(gv.data_ptr());
    const acc_t* sp = state.data_ptr<acc_t>();
    const acc_t* sop = s_out.data_ptr<acc_t>();
    const acc_t* gsp = gs.data_ptr<acc_t>();
    acc_t* gsip = gs_in.data_ptr<acc_t>();
    acc_t* gwp = gw.data_ptr<acc_t>();
    acc_t* gup = gu.data_ptr<acc_t>();
#pragma omp parallel
    {
      std::vector<Step<acc_t>> steps;  // per-thread scratch, reused across tasks
#pragma omp for schedule(static)
      for (int64_t task = 0; task < B * nblk; ++task) {
        backward_task<io_t, acc_t>(wp, up, kp, vp, sp, sop, gyp, gsp, gwp, gup, gkp, gvp,
                                   gsip, T, C, task / nblk, (task % nblk) * CB, steps);
      }
    }
  });
  return {gw, gu, gk, gv, gs_in};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "WKV forward (CPU): (w, u, k, v, state) -> (y, new_state)");
  m.def("backward", &backward,
        "WKV backward (CPU): (w, u, k, v, state, new_state, gy, gstate) -> "
        "(gw per batch row, gu per batch row, gk, gv, gstate)");
}
