// Host launchers of the fourbit CUDA kernels (raw pointers; stream given by the caller). Throw std::runtime_error
// on a bad argument or a failed launch.
#pragma once
#include <cstdint>

namespace fourbit_cuda {

struct LinearArgs {
  const void* x; int xt;  // XType: 0 f32, 1 bf16, 2 f16
  int64_t M;
  const uint8_t* q; int qk;  // QKind: 0 nib4 [N, K/2], 1 int8, 2 uint8 [N, K]
  int64_t N, K, G;
  const void* scales; int sk;  // SKind: 0 f32, 1 e4m3, 2 e8m0; [N, K/G]
  const uint8_t* zeros;        // [N, K/G] or null
  const float* gscale;         // [1] or null
  const float* lut;            // [16] device floats for nib4
  const void* bias;            // [N] of x's dtype or null
  void* out;                   // [M, N] of x's dtype, contiguous
  float* ws; int64_t ws_elems; // split-K workspace (floats)
  int codes = 0;               // linear_tc, linear_rs: 0 any LUT, 1 lut[c] = c, 2 lut[c] = c - 8 (int4 tables)
  const float* row_scale = nullptr;  // linear_w4a8 only: the activations' per-row scale s [M] (x: E4M3 bytes)
  bool after_act = false;  // linear_w4a8 only: act_quantize_e4m3 wrote x and row_scale just before, on this stream
                           // (the GEMM then starts early: programmatic dependent launch, its weights first)
};

// 4-bit dequantize (csrc/cuda/dequant.cu): out [N, K] (ot: XType) = ((lut[c] - z) * s) * g per element, float32
// steps, RNE to ot; bit-exact with the reference. Whether it takes these arguments (K % 8 == 0, G a power of two
// >= 8 dividing K, scale kinds 0-2, 16-byte aligned codes and out); the launch (throws where it does not take them).
struct DequantArgs {
  const uint8_t* q;            // [N, K/2] packed, element 2i in the low nibble of byte i
  int64_t N, K, G;
  const void* scales; int sk;  // [N, K/G], SKind
  const uint8_t* zeros;        // [N, K/G] or null
  const float* gscale;         // [1] or null
  const float* lut;            // [16] device floats
  void* out; int ot;           // [N, K] contiguous, XType
};
bool dequantize_takes(const DequantArgs& a);
void dequantize(const DequantArgs& a, uintptr_t stream);

// 4-bit weight quantize (csrc/cuda/quant.cu), bit-exact with the reference: w [N, K] bf16 / fp16 (xt) -> codes q
// [N, K/2] (element 2i in the low nibble), scales [N, K/G] (float32, or E4M3 / E8M0 bytes for nvfp4 / mxfp4) and
// zeros [N, K/G] (int asym). fmt: kernels/codecs.py's ids (0 int4 sym, 1 int4 asym, 2 codebook through its bucket
// table of nb int64 entries, 3 nvfp4, 4 / 5 mxfp4 floor / rceil); zero_code: the codebook's code of 0. Whether it
// takes these arguments (a power-of-two G in [16, 512] dividing K, 16-byte aligned w and q); the launch (throws
// otherwise).
struct QuantArgs {
  const void* w; int xt;
  int64_t N, K, G;
  int fmt;
  uint8_t* q; void* scales; uint8_t* zeros;
  const void* table; int nb; int zero_code;
  float* amax = nullptr;        // nvfp4 (fmt 3, G = 16): [1] scratch, gets max |w| over the finite weights
  float* gscale = nullptr;      // nvfp4: [1] out, amax / 2688 (1 if 0)
};
bool quantize_takes(const QuantArgs& a);
void quantize(const QuantArgs& a, uintptr_t stream);

// float32 elements of split-K workspace linear() needs for these sizes (0: none).
int64_t linear_workspace(int xt, int64_t M, int64_t N, int64_t K, int64_t G, int qk);
// Which kernel linear() takes: "mma" (tensor-core GEMV) or "generic" (exact fp32 dequant, any shape).
const char* linear_path(const LinearArgs& a);
void linear(const LinearArgs& a, uintptr_t stream);

// Small-M 4-bit GEMM (csrc/cuda/gemm_sm.cu, mma.sync): whether linear() runs these arguments through it (8 < M <= 64,
// nib4 codes with a GEMV scale kind, bf16 / fp16 x, K % 32 == 0, 16-byte aligned x and codes); its float32
// split-K workspace (0: none); the launch (linear() calls it).
bool linear_sm_takes(const LinearArgs& a);
int64_t linear_sm_workspace(int64_t M, int64_t N, int64_t K);
void linear_sm(const LinearArgs& a, uintptr_t stream);

// Mid-M tensor-core GEMM (csrc/cuda/gemm_tc.cu, Hopper wgmma): whether these arguments and the current device take
// it (nib4 codes, bf16 / fp16 x, K % 64 == 0, G a multiple of 64 or 16 / 32 for the E4M3 / E8M0 / f32 scales,
// 16-byte aligned x and codes, an sm_90 device); the float32 workspace it needs (0: none); the launch.
bool linear_tc_supported(const LinearArgs& a);
int64_t linear_tc_workspace(int64_t M, int64_t N, int64_t K);
void linear_tc(const LinearArgs& a, uintptr_t stream);

// Register-A wgmma GEMM (csrc/cuda/gemm_rs.cu, Hopper): whether these arguments and the current device take it
// (nib4 codes with a GEMV scale kind and G = 16 / 32 / a multiple of 64, bf16 / fp16 x, K % 64 == 0, 16-byte aligned x
// and codes, an sm_90 device); its float32 split-K workspace (0: none); the launch. Rounds the weights as the GEMV.
bool linear_rs_takes(const LinearArgs& a);
int64_t linear_rs_workspace(int64_t M, int64_t N, int64_t K);
void linear_rs(const LinearArgs& a, uintptr_t stream);

// W4A8 GEMM on FP8 tensor cores (csrc/cuda/gemm_w4a8.cu, Hopper): x = E4M3 bytes [M, K] in the K order of
// kernels/w4a8.x8_perm, row_scale = s [M], int4 codes (zeros [N, K/G] or null for q - 8), float32 scales, xt the
// output's (and bias's) dtype. Whether these arguments and the device take it (K and G multiples of 128, 16-byte
// aligned x and codes, an sm_90 device); its float32 split-K workspace (0: none); the launch.
bool linear_w4a8_takes(const LinearArgs& a);
int64_t linear_w4a8_workspace(int64_t M, int64_t N, int64_t K);
void linear_w4a8(const LinearArgs& a, uintptr_t stream);

// W4A8's per-row activation quantizer (csrc/cuda/act_e4m3.cu): x [M, K] (xt) -> x8 E4M3 bytes [M, K] (perm 1 / 2: in
// the W4A8 GEMM's int4 / mxfp4 K order, K % 128 == 0; 0: as x), s float32 [M]; bit-exact with
// fourbit.ops.w4a8.quantize_act_ref. K % 8 == 0, x 16-byte, x8 8-byte aligned.
void act_quantize_e4m3(const void* x, int xt, int64_t M, int64_t K, int perm, uint8_t* x8, float* s,
                       uintptr_t stream);

// Activation quantize (fmt 0 = nvfp4, 1 = mxfp4 floor, 2 = mxfp4 rceil): x [M, K] -> codes [M, K/2],
// optional canonical scales [M, K/B], optional blocked scales (128x4 tiles, zero padded), nvfp4 global scale [1].
// amax_ws: one uint32 of scratch (nvfp4).
void act_quantize(const void* x, int xt, int64_t M, int64_t K, int fmt, uint8_t* q, uint8_t* scales,
                  uint8_t* scales_blocked, int64_t blocked_bytes, float* gscale, uint32_t* amax_ws, uintptr_t stream);

// W4A4: out [M, N] = (A * sA * gA) @ (W * sW * gW)^T (+ bias); both operands nvfp4 (fmt 0) or mxfp4 (fmt 1),
// codes [rows, K/2], scales in the blocked layout. out_t: XType of out and bias.
void w4a4_linear(int fmt, const uint8_t* qa, const uint8_t* sa, const float* ga, int64_t M, const uint8_t* qw,
                 const uint8_t* sw, const float* gw, int64_t N, int64_t K, const void* bias, void* out, int out_t,
                 uintptr_t stream);
// Which W4A4 MMA atom the current device runs: "mxf4nvf4-block-scale" (sm_120a/121a) or "bf16-mma-fallback".
const char* w4a4_atom();

}  // namespace fourbit_cuda
