// pybind11 module fourbit._C: raw-pointer entry points (Python passes tensor.data_ptr() ints, sizes, dtype names);
// the extension does not link libtorch. Validation happens in the Python op layer.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/common.h"
#include "cpu/kernels.h"
#include "cpu/linear.h"
#include "cpu/pack.h"
#include "cpu/quantize.h"
#include "cpu/threads.h"

namespace py = pybind11;
using namespace fourbit;

#ifdef FOURBIT_WITH_CUDA
void register_cuda(py::module_& m);  // csrc/cuda/bindings.cu: the cuda_* entry points
#endif

namespace {
// "float32" / "bfloat16" / "float16" -> DType.
DType parse_dtype(const std::string& s) {
  if (s == "float32") return DType::F32;
  if (s == "bfloat16") return DType::BF16;
  if (s == "float16") return DType::F16;
  throw std::invalid_argument("unsupported dtype " + s);
}
// "float32" / "float8_e4m3fn" / "float8_e8m0fnu" -> SKind.
SKind parse_skind(const std::string& s) {
  if (s == "float32") return SKind::F32;
  if (s == "float8_e4m3fn") return SKind::E4M3;
  if (s == "float8_e8m0fnu") return SKind::E8M0;
  throw std::invalid_argument("unsupported scale dtype " + s);
}
// "nib4" / "int8" / "uint8" -> QKind.
QKind parse_qkind(const std::string& s) {
  if (s == "nib4") return QKind::NIB4;
  if (s == "int8") return QKind::S8;
  if (s == "uint8") return QKind::U8;
  throw std::invalid_argument("unsupported qdata kind " + s);
}
template <class T> T* ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }
// Build the weight view from the raw arguments (0 = absent for zeros / global scale / lut).
QW make_qw(uintptr_t q, const std::string& qkind, int64_t N, int64_t K, int64_t G, uintptr_t scales,
           const std::string& skind, uintptr_t zeros, uintptr_t gscale, uintptr_t lut) {
  QW w{parse_qkind(qkind), ptr<const uint8_t>(q), N, K, G, parse_skind(skind), ptr<const void>(scales),
       ptr<const uint8_t>(zeros), ptr<const float>(gscale), ptr<const float>(lut)};
  if (G <= 0 || K % G != 0) throw std::invalid_argument("group size must divide K");
  if (w.kind == QKind::NIB4 && (lut == 0 || K % 2 != 0)) throw std::invalid_argument("nib4 needs a lut and even K");
  return w;
}
}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fourbit native CPU kernels (raw-pointer API)";
#ifdef FOURBIT_WITH_CUDA
  register_cuda(m);
  m.def("has_cuda", [] { return true; }, "whether CUDA kernels were compiled in (a driver is needed to run them)");
#else
  m.def("has_cuda", [] { return false; }, "whether CUDA kernels were compiled in (a driver is needed to run them)");
#endif
  m.def("num_threads", &num_threads);
  m.def("set_isa", [](const std::string& s) { set_isa(s.c_str()); }, "force 'auto', 'avx512', 'avx2' or 'scalar'");
  m.def("active_isa", [] { int i = active_isa(); return std::string(i == 2 ? "avx512" : i == 1 ? "avx2" : "scalar"); });
  m.def("pack_nibbles", [](uintptr_t src, uintptr_t dst, int64_t nbytes) {
    py::gil_scoped_release r; pack_nibbles(ptr<const uint8_t>(src), ptr<uint8_t>(dst), nbytes);
  }, py::arg("codes"), py::arg("out"), py::arg("nbytes"));
  m.def("unpack_nibbles", [](uintptr_t src, uintptr_t dst, int64_t nbytes) {
    py::gil_scoped_release r; unpack_nibbles(ptr<const uint8_t>(src), ptr<uint8_t>(dst), nbytes);
  }, py::arg("packed"), py::arg("out"), py::arg("nbytes"));
  m.def("format_lut", [](const std::string& f, const std::string& v) {
    std::vector<float> l(16); format_lut(parse_format(f, v), l.data()); return l;
  }, py::arg("fmt"), py::arg("variant") = "");
  m.def("quantize", [](uintptr_t w, const std::string& dtype, int64_t N, int64_t K, int64_t G, const std::string& fmt,
                       const std::string& variant, uintptr_t q, uintptr_t scales, uintptr_t zeros, uintptr_t gscale) {
    QSpec P;
    P.fmt = parse_format(fmt, variant);
    P.w = ptr<const void>(w); P.dt = parse_dtype(dtype); P.esize = P.dt == DType::F32 ? 4 : 2;
    P.N = N; P.K = K; P.G = G;
    P.q = ptr<uint8_t>(q); P.scales = ptr<void>(scales); P.zeros = ptr<uint8_t>(zeros); P.gscale_out = ptr<float>(gscale);
    if (G <= 0 || K % G != 0 || K % 2 != 0) throw std::invalid_argument("group size must divide K, K even");
    bool asym = P.fmt == Fmt::INT4_ASYM || P.fmt == Fmt::INT8_ASYM;
    if (asym != (zeros != 0)) throw std::invalid_argument("zeros pointer must be given exactly for asym formats");
    if ((P.fmt == Fmt::NVFP4) != (gscale != 0)) throw std::invalid_argument("global scale only for nvfp4");
    py::gil_scoped_release r;
    quantize(P);
  }, py::arg("w"), py::arg("dtype"), py::arg("N"), py::arg("K"), py::arg("G"), py::arg("fmt"), py::arg("variant"),
     py::arg("qdata"), py::arg("scales"), py::arg("zeros"), py::arg("global_scale"));
  m.def("dequantize", [](uintptr_t q, const std::string& qkind, int64_t N, int64_t K, int64_t G, uintptr_t scales,
                         const std::string& skind, uintptr_t zeros, uintptr_t gscale, uintptr_t lut, uintptr_t out,
                         const std::string& out_dtype) {
    QW w = make_qw(q, qkind, N, K, G, scales, skind, zeros, gscale, lut);
    DType t = parse_dtype(out_dtype);
    py::gil_scoped_release r;
    dequantize_all(w, t, ptr<void>(out));
  }, py::arg("qdata"), py::arg("qkind"), py::arg("N"), py::arg("K"), py::arg("G"), py::arg("scales"),
     py::arg("scale_dtype"), py::arg("zeros"), py::arg("global_scale"), py::arg("lut"), py::arg("out"),
     py::arg("out_dtype"));
  m.def("linear", [](uintptr_t x, const std::string& dtype, int64_t M, uintptr_t q, const std::string& qkind, int64_t N,
                     int64_t K, int64_t G, uintptr_t scales, const std::string& skind, uintptr_t zeros, uintptr_t gscale,
                     uintptr_t lut, uintptr_t bias, uintptr_t out) {
    QW w = make_qw(q, qkind, N, K, G, scales, skind, zeros, gscale, lut);
    DType t = parse_dtype(dtype);
    py::gil_scoped_release r;
    linear(w, ptr<const void>(x), t, M, ptr<const void>(bias), ptr<void>(out));
  }, py::arg("x"), py::arg("dtype"), py::arg("M"), py::arg("qdata"), py::arg("qkind"), py::arg("N"), py::arg("K"),
     py::arg("G"), py::arg("scales"), py::arg("scale_dtype"), py::arg("zeros"), py::arg("global_scale"), py::arg("lut"),
     py::arg("bias"), py::arg("out"));
}
