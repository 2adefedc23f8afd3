// pybind11 registration of the CUDA entry points (called from csrc/module.cpp when FOURBIT_WITH_CUDA is defined).
// Pointers, sizes and the stream (torch.cuda.current_stream().cuda_stream) arrive as Python ints.
// Host-only: the device passes (one per architecture) see an empty file, so pybind11 is parsed once.
#ifndef __CUDA_ARCH__
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include <cuda_runtime.h>

#include "api.h"

namespace py = pybind11;

namespace {
int xtype(const std::string& s) {
  if (s == "float32") return 0;
  if (s == "bfloat16") return 1;
  if (s == "float16") return 2;
  throw std::invalid_argument("unsupported dtype " + s);
}
int skind(const std::string& s) {
  if (s == "float32") return 0;
  if (s == "float8_e4m3fn") return 1;
  if (s == "float8_e8m0fnu") return 2;
  throw std::invalid_argument("unsupported scale dtype " + s);
}
int qkind(const std::string& s) {
  if (s == "nib4") return 0;
  if (s == "int8") return 1;
  if (s == "uint8") return 2;
  throw std::invalid_argument("unsupported qdata kind " + s);
}
int act_fmt(const std::string& f, const std::string& v) {
  if (f == "nvfp4") return 0;
  if (f == "mxfp4") {
    if (v == "" || v == "floor") return 1;
    if (v == "rceil") return 2;
  }
  throw std::invalid_argument("activation format must be nvfp4 or mxfp4 (floor / rceil), got " + f + " " + v);
}
template <class T> T* P(uintptr_t p) { return reinterpret_cast<T*>(p); }
fourbit_cuda::LinearArgs make_args(uintptr_t x, const std::string& dtype, int64_t M, uintptr_t q,
                                   const std::string& qk, int64_t N, int64_t K, int64_t G, uintptr_t scales,
                                   const std::string& sd, uintptr_t zeros, uintptr_t gscale, uintptr_t lut,
                                   uintptr_t bias, uintptr_t out, uintptr_t ws, int64_t ws_elems) {
  fourbit_cuda::LinearArgs a{};
  a.x = P<const void>(x); a.xt = xtype(dtype); a.M = M; a.q = P<const uint8_t>(q); a.qk = qkind(qk);
  a.N = N; a.K = K; a.G = G; a.scales = P<const void>(scales); a.sk = skind(sd); a.zeros = P<const uint8_t>(zeros);
  a.gscale = P<const float>(gscale); a.lut = P<const float>(lut); a.bias = P<const void>(bias); a.out = P<void>(out);
  a.ws = P<float>(ws); a.ws_elems = ws_elems;
  return a;
}
// The two wgmma GEMMs' bindings share one signature (codes: gemm_tc's decode kind; gemm_rs ignores it).
void def_wgmma_linear(py::module_& m, const char* name, void (*fn)(const fourbit_cuda::LinearArgs&, uintptr_t),
                      int64_t (*workspace)(int64_t, int64_t, int64_t)) {
  m.def(name, [fn](uintptr_t x, const std::string& dtype, int64_t M, uintptr_t q, int64_t N, int64_t K, int64_t G,
                   uintptr_t scales, const std::string& sd, uintptr_t zeros, uintptr_t gscale, uintptr_t lut, int codes,
                   uintptr_t bias, uintptr_t out, uintptr_t ws, int64_t ws_elems, uintptr_t stream) {
    auto a = make_args(x, dtype, M, q, "nib4", N, K, G, scales, sd, zeros, gscale, lut, bias, out, ws, ws_elems);
    a.codes = codes;
    py::gil_scoped_release r;
    fn(a, stream);
  }, py::arg("x"), py::arg("dtype"), py::arg("M"), py::arg("qdata"), py::arg("N"), py::arg("K"), py::arg("G"),
     py::arg("scales"), py::arg("scale_dtype"), py::arg("zeros"), py::arg("global_scale"), py::arg("lut"),
     py::arg("codes"), py::arg("bias"), py::arg("out"), py::arg("ws"), py::arg("ws_elems"), py::arg("stream"));
  m.def((std::string(name) + "_workspace").c_str(), workspace, py::arg("M"), py::arg("N"), py::arg("K"),
        (std::string("float32 elements of split-K workspace ") + name + " needs (0: none)").c_str());
}
}  // namespace

void register_cuda(py::module_& m) {
  m.def("cuda_linear_workspace", [](const std::string& dtype, int64_t M, int64_t N, int64_t K, int64_t G,
                                    const std::string& qk) {
    return fourbit_cuda::linear_workspace(xtype(dtype), M, N, K, G, qkind(qk));
  }, py::arg("dtype"), py::arg("M"), py::arg("N"), py::arg("K"), py::arg("G"), py::arg("qkind"),
     "float32 elements of split-K workspace cuda_linear needs (0: none)");
  m.def("cuda_linear_path", [](uintptr_t x, const std::string& dtype, int64_t M, uintptr_t q, const std::string& qk,
                               int64_t N, int64_t K, int64_t G) {
    auto a = make_args(x, dtype, M, q, qk, N, K, G, 0, "float32", 0, 0, 0, 0, 0, 0, 0);
    return std::string(fourbit_cuda::linear_path(a));
  }, py::arg("x"), py::arg("dtype"), py::arg("M"), py::arg("qdata"), py::arg("qkind"), py::arg("N"), py::arg("K"),
     py::arg("G"));
  m.def("cuda_linear", [](uintptr_t x, const std::string& dtype, int64_t M, uintptr_t q, const std::string& qk,
                          int64_t N, int64_t K, int64_t G, uintptr_t scales, const std::string& sd, uintptr_t zeros,
                          uintptr_t gscale, uintptr_t lut, uintptr_t bias, uintptr_t out, uintptr_t ws,
                          int64_t ws_elems, uintptr_t stream) {
    auto a = make_args(x, dtype, M, q, qk, N, K, G, scales, sd, zeros, gscale, lut, bias, out, ws, ws_elems);
    py::gil_scoped_release r;
    fourbit_cuda::linear(a, stream);
  }, py::arg("x"), py::arg("dtype"), py::arg("M"), py::arg("qdata"), py::arg("qkind"), py::arg("N"), py::arg("K"),
     py::arg("G"), py::arg("scales"), py::arg("scale_dtype"), py::arg("zeros"), py::arg("global_scale"),
     py::arg("lut"), py::arg("bias"), py::arg("out"), py::arg("ws"), py::arg("ws_elems"), py::arg("stream"));
  m.def("cuda_linear_sm_takes", [](uintptr_t x, const std::string& dtype, int64_t M, uintptr_t q, int64_t N, int64_t K,
                                   int64_t G, uintptr_t scales, const std::string& sd, bool has_zeros) {
    // zeros and lut are only tested for presence here: 1 stands for "present" (nothing is dereferenced)
    auto a = make_args(x, dtype, M, q, "nib4", N, K, G, scales, sd, has_zeros ? 1 : 0, 0, 1, 0, 0, 0, 0);
    return fourbit_cuda::linear_sm_takes(a);
  }, py::arg("x"), py::arg("dtype"), py::arg("M"), py::arg("qdata"), py::arg("N"), py::arg("K"), py::arg("G"),
     py::arg("scales"), py::arg("scale_dtype"), py::arg("has_zeros"),
     "whether cuda_linear runs these nib4 arguments through the small-M mma.sync GEMM (csrc/cuda/gemm_sm.cu)");
  m.def("cuda_linear_tc_supported", [](uintptr_t x, const std::string& dtype, int64_t M, uintptr_t q, int64_t N,
                                       int64_t K, int64_t G, const std::string& sd, bool has_zeros, int codes) {
    // zeros and lut are only tested for presence here: 1 stands for "present" (nothing is dereferenced)
    auto a = make_args(x, dtype, M, q, "nib4", N, K, G, 0, sd, has_zeros ? 1 : 0, 0, 1, 0, 0, 0, 0);
    a.codes = codes;
    return fourbit_cuda::linear_tc_supported(a);
  }, py::arg("x"), py::arg("dtype"), py::arg("M"), py::arg("qdata"), py::arg("N"), py::arg("K"), py::arg("G"),
     py::arg("scale_dtype"), py::arg("has_zeros"), py::arg("codes"),
     "whether the Hopper tensor-core GEMM (csrc/cuda/gemm_tc.cu) takes these nib4 arguments on the current device");
  def_wgmma_linear(m, "cuda_linear_tc", fourbit_cuda::linear_tc, fourbit_cuda::linear_tc_workspace);
  m.def("cuda_linear_rs_takes", [](uintptr_t x, const std::string& dtype, int64_t M, uintptr_t q, int64_t N, int64_t K,
                                   int64_t G, uintptr_t scales, const std::string& sd, uintptr_t zeros) {
    // the lut is only tested for presence here: 1 stands for "present"; nothing is dereferenced
    auto a = make_args(x, dtype, M, q, "nib4", N, K, G, scales, sd, zeros, 0, 1, 0, 0, 0, 0);
    return fourbit_cuda::linear_rs_takes(a);
  }, py::arg("x"), py::arg("dtype"), py::arg("M"), py::arg("qdata"), py::arg("N"), py::arg("K"), py::arg("G"),
     py::arg("scales"), py::arg("scale_dtype"), py::arg("zeros"),
     "whether the Hopper register-A wgmma GEMM (csrc/cuda/gemm_rs.cu) takes these nib4 arguments on this device");
  def_wgmma_linear(m, "cuda_linear_rs", fourbit_cuda::linear_rs, fourbit_cuda::linear_rs_workspace);
  // W4A8: x8 (E4M3 bytes, x8_perm's K order) and its row scales xs; out_dtype names the output (and bias) dtype
  m.def("cuda_linear_w4a8_takes", [](uintptr_t x8, uintptr_t xs, int64_t M, uintptr_t q, int64_t N, int64_t K,
                                     int64_t G, uintptr_t scales, const std::string& sd) {
    auto a = make_args(x8, "bfloat16", M, q, "nib4", N, K, G, scales, sd, 0, 0, 0, 0, 0, 0, 0);
    a.row_scale = P<const float>(xs);
    return fourbit_cuda::linear_w4a8_takes(a);
  }, py::arg("x8"), py::arg("xs"), py::arg("M"), py::arg("qdata"), py::arg("N"), py::arg("K"), py::arg("G"),
     py::arg("scales"), py::arg("scale_dtype"),
     "whether the Hopper FP8 W4A8 GEMM (csrc/cuda/gemm_w4a8.cu) takes these int4 / mxfp4 arguments on this device");
  m.def("cuda_linear_w4a8", [](uintptr_t x8, uintptr_t xs, int64_t M, uintptr_t q, int64_t N, int64_t K, int64_t G,
                               uintptr_t scales, const std::string& sd, uintptr_t zeros, uintptr_t bias, uintptr_t out,
                               const std::string& out_dtype, uintptr_t ws, int64_t ws_elems, uintptr_t stream,
                               bool after_act) {
    auto a = make_args(x8, out_dtype, M, q, "nib4", N, K, G, scales, sd, zeros, 0, 0, bias, out, ws, ws_elems);
    a.row_scale = P<const float>(xs);
    a.after_act = after_act;
    py::gil_scoped_release r;
    fourbit_cuda::linear_w4a8(a, stream);
  }, py::arg("x8"), py::arg("xs"), py::arg("M"), py::arg("qdata"), py::arg("N"), py::arg("K"), py::arg("G"),
     py::arg("scales"), py::arg("scale_dtype"), py::arg("zeros"), py::arg("bias"), py::arg("out"),
     py::arg("out_dtype"), py::arg("ws"), py::arg("ws_elems"), py::arg("stream"), py::arg("after_act") = false);
  // The op's native W4A8 call in one crossing (fourbit.ops.eager's prepared replay): the activation quantizer into
  // x8 / xs, then the GEMM right behind it (after_act), the two launches fourbit.ops.w4a8.linear_into makes. dtype:
  // x's, which is also out's and bias's. Why: the recorded replay of those two launches (two host steps through their
  // Python wrappers) took 52-103 us of host time a call, this one 29-55 (H200 machine, bench/probes/w4a8_eager.py,
  // 2026-11-28).
  m.def("cuda_w4a8_forward", [](uintptr_t x, const std::string& dtype, int64_t M, int64_t K, int perm, uintptr_t x8,
                                uintptr_t xs, uintptr_t q, int64_t N, int64_t G, uintptr_t scales, const std::string& sd,
                                uintptr_t zeros, uintptr_t bias, uintptr_t out, uintptr_t ws, int64_t ws_elems,
                                uintptr_t stream) {
    auto a = make_args(x8, dtype, M, q, "nib4", N, K, G, scales, sd, zeros, 0, 0, bias, out, ws, ws_elems);
    a.row_scale = P<const float>(xs);
    a.after_act = true;
    py::gil_scoped_release r;
    fourbit_cuda::act_quantize_e4m3(P<const void>(x), a.xt, M, K, perm, P<uint8_t>(x8), P<float>(xs), stream);
    fourbit_cuda::linear_w4a8(a, stream);
  }, py::arg("x"), py::arg("dtype"), py::arg("M"), py::arg("K"), py::arg("perm"), py::arg("x8"), py::arg("xs"),
     py::arg("qdata"), py::arg("N"), py::arg("G"), py::arg("scales"), py::arg("scale_dtype"), py::arg("zeros"),
     py::arg("bias"), py::arg("out"), py::arg("ws"), py::arg("ws_elems"), py::arg("stream"));
  m.def("cuda_linear_w4a8_workspace", fourbit_cuda::linear_w4a8_workspace, py::arg("M"), py::arg("N"), py::arg("K"),
        "float32 elements of split-K workspace cuda_linear_w4a8 needs (0: none)");
  m.def("cuda_act_quantize_e4m3", [](uintptr_t x, const std::string& dtype, int64_t M, int64_t K, int perm,
                                     uintptr_t x8, uintptr_t s, uintptr_t stream) {
    const int xt = xtype(dtype);
    py::gil_scoped_release r;
    fourbit_cuda::act_quantize_e4m3(P<const void>(x), xt, M, K, perm, P<uint8_t>(x8), P<float>(s), stream);
  }, py::arg("x"), py::arg("dtype"), py::arg("M"), py::arg("K"), py::arg("perm"), py::arg("x8"), py::arg("s"),
     py::arg("stream"), "W4A8's per-row E4M3 activation quantizer (csrc/cuda/act_e4m3.cu)");
  m.def("cuda_act_quantize", [](uintptr_t x, const std::string& dtype, int64_t M, int64_t K, const std::string& fmt,
                                const std::string& variant, uintptr_t q, uintptr_t scales, uintptr_t blocked,
                                int64_t blocked_bytes, uintptr_t gscale, uintptr_t amax_ws, uintptr_t stream) {
    int f = act_fmt(fmt, variant), xt = xtype(dtype);
    py::gil_scoped_release r;
    fourbit_cuda::act_quantize(P<const void>(x), xt, M, K, f, P<uint8_t>(q), P<uint8_t>(scales),
                               P<uint8_t>(blocked), blocked_bytes, P<float>(gscale), P<uint32_t>(amax_ws), stream);
  }, py::arg("x"), py::arg("dtype"), py::arg("M"), py::arg("K"), py::arg("fmt"), py::arg("variant"),
     py::arg("qdata"), py::arg("scales"), py::arg("scales_blocked"), py::arg("blocked_bytes"),
     py::arg("global_scale"), py::arg("amax_ws"), py::arg("stream"));
  m.def("cuda_w4a4_linear", [](const std::string& fmt, uintptr_t qa, uintptr_t sa, uintptr_t ga, int64_t M,
                               uintptr_t qw, uintptr_t sw, uintptr_t gw, int64_t N, int64_t K, uintptr_t bias,
                               uintptr_t out, const std::string& out_dtype, uintptr_t stream) {
    int f = fmt == "nvfp4" ? 0 : fmt == "mxfp4" ? 1 : -1;
    if (f < 0) throw std::invalid_argument("w4a4 format must be nvfp4 or mxfp4");
    int ot = xtype(out_dtype);
    py::gil_scoped_release r;
    fourbit_cuda::w4a4_linear(f, P<const uint8_t>(qa), P<const uint8_t>(sa), P<const float>(ga), M,
                              P<const uint8_t>(qw), P<const uint8_t>(sw), P<const float>(gw), N, K,
                              P<const void>(bias), P<void>(out), ot, stream);
  }, py::arg("fmt"), py::arg("qa"), py::arg("sa_blocked"), py::arg("ga"), py::arg("M"), py::arg("qw"),
     py::arg("sw_blocked"), py::arg("gw"), py::arg("N"), py::arg("K"), py::arg("bias"), py::arg("out"),
     py::arg("out_dtype"), py::arg("stream"));
  m.def("cuda_w4a4_atom", [] { return std::string(fourbit_cuda::w4a4_atom()); },
        "which W4A4 MMA atom the current device runs");
  m.def("cuda_dequantize", [](uintptr_t q, int64_t N, int64_t K, int64_t G, uintptr_t scales, const std::string& sd,
                              uintptr_t zeros, uintptr_t gscale, uintptr_t lut, uintptr_t out,
                              const std::string& out_dtype, uintptr_t stream, bool check_only) {
    fourbit_cuda::DequantArgs a{P<const uint8_t>(q), N, K, G, P<const void>(scales), skind(sd), P<const uint8_t>(zeros),
                                P<const float>(gscale), P<const float>(lut), P<void>(out), xtype(out_dtype)};
    if (check_only) return fourbit_cuda::dequantize_takes(a);
    py::gil_scoped_release r;
    fourbit_cuda::dequantize(a, stream);
    return true;
  }, py::arg("qdata"), py::arg("N"), py::arg("K"), py::arg("G"), py::arg("scales"), py::arg("scale_dtype"),
     py::arg("zeros"), py::arg("global_scale"), py::arg("lut"), py::arg("out"), py::arg("out_dtype"),
     py::arg("stream"), py::arg("check_only") = false,
     "4-bit dequantize (csrc/cuda/dequant.cu); check_only: whether it takes these arguments (nothing launched)");
  m.def("cuda_quantize", [](uintptr_t w, const std::string& dtype, int64_t N, int64_t K, int64_t G, int fmt,
                            uintptr_t q, uintptr_t scales, uintptr_t zeros, uintptr_t table, int nb, int zero_code,
                            uintptr_t amax, uintptr_t gscale, uintptr_t stream, bool check_only) {
    fourbit_cuda::QuantArgs a{P<const void>(w), xtype(dtype), N, K, G, fmt, P<uint8_t>(q), P<void>(scales),
                              P<uint8_t>(zeros), P<const void>(table), nb, zero_code, P<float>(amax),
                              P<float>(gscale)};
    if (check_only) return fourbit_cuda::quantize_takes(a);
    py::gil_scoped_release r;
    fourbit_cuda::quantize(a, stream);
    return true;
  }, py::arg("w"), py::arg("dtype"), py::arg("N"), py::arg("K"), py::arg("G"), py::arg("fmt"), py::arg("qdata"),
     py::arg("scales"), py::arg("zeros"), py::arg("table"), py::arg("nb"), py::arg("zero_code"), py::arg("amax"),
     py::arg("global_scale"), py::arg("stream"),
     py::arg("check_only") = false,
     "4-bit weight quantize (csrc/cuda/quant.cu); check_only: whether it takes these arguments (nothing launched)");
  m.def("cuda_device_count", [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) { cudaGetLastError(); return 0; }
    return n;
  });
}

#endif  // __CUDA_ARCH__
