// W4A8 GEMM on Hopper FP8 tensor cores (sm_90a): y[M, N] = s[m] * sum_g scale[n, g] * sum_{k in g} x8[m, k] *
// (q[n, k] - z[n, g]) (+ bias), the product of fourbit.ops.w4a8 for int4 weights with groups of 128 K or a multiple,
// and for mxfp4 weights (the E2M1 value, E8M0 scales a 32-K group) whose scales fold exactly (mx_table below).
// The structure is gemm_rs.cu's: the WEIGHTS are wgmma's A operand, built in registers, and x8 (E4M3 bytes) is B, a
// TMA tile in shared memory. A CTA owns 128 weight rows and BN (64 / 128 / 256) x rows: two consumer warpgroups (64
// weight rows each) and a producer warpgroup whose one thread loads, per 128-K chunk, the x8 tile (BN rows x 128 bytes,
// 128-byte swizzle) and the 128 rows x 64 bytes of codes into one of 8 stages (4 of 40 KB at BN = 256).
//   - The weight operand is EXACT in E4M3 with no conversion instruction: d = q - z is an integer in [-15, 15], and
//     the E4M3 byte (sign << 7) | |d| is the subnormal / first-binade value |d| * 2^-9 (bytes 0x00-0x0F are m * 2^-9
//     for m = 0..15). So four codes become four operand bytes with VABSDIFF4 (|q - z| per byte) and a sign from
//     (z + 0x7f - q) per byte (the compiler's form of ~(q + 0x80 - z)): ~1.1 instructions a weight, against ~2 for
//     gemm_rs.cu's bf16 table decode and ~4.5 for the Triton kernel's convert (kernels/w4a8.py). The promotion
//     factor carries the 2^9 back (scale * 512 is exact), so the products and float32 sums are those of the operand
//     q - z times 2^-9. The tensor core keeps fewer bits of them, though: a subnormal byte's exponent field
//     overstates it by up to 3 bits, so tests/test_w4a8.py bounds this kernel with 9 kept fraction bits in its
//     accumulation model (F_BITS_NATIVE; the Triton kernels' integer-valued operands keep 12).
//   - The K order inside each 128-K chunk is permuted so that a code word needs no shuffle: thread q of a quad reads
//     bytes [16 q, 16 q + 16) of its row (real K [32 q, 32 q + 32)); for k32 step s its word s holds real K
//     32 q + 8 s + 0..7, whose low nibbles (K even) are its A register for MMA K 4 q .. 4 q + 3 and whose high
//     nibbles (K odd) are the one for 16 + 4 q ... The activation quantizer writes x8 in that order (x8_perm in
//     kernels/w4a8.py: real r -> 32 ((r >> 3) & 3) + 16 (r & 1) + 4 (r >> 5) + ((r >> 1) & 3)); the dot product does
//     not depend on the order, only both operands must share it. mxfp4 puts K 8 s + 0..3 of the word in the first
//     register and 8 s + 4..7 in the second (PERM_MXFP4: r -> 32 ((r >> 3) & 3) + 16 ((r >> 2) & 1) + 4 (r >> 5) +
//     (r & 3)), so one PRMT looks up four consecutive codes.
//   - Per chunk a warpgroup issues its wgmmas in groups of 4 m64n64k32 (128 K against 64 x rows) into one of two
//     temporary accumulators (the first with scale-d = 0) and promotes each finished group while the other runs:
//     acc += (scale * 512) * tmp, one FFMA an element (the per-128-K float32 promotion of kernels/w4a8.py). The
//     loop is straight-line code over 4 chunks that starts and ends with no wgmma in flight (see there: ptxas).
//     BN = 256 has one temporary: its 128 accumulators, a temporary and two chunks' A fragments fill the consumers'
//     232 registers (the mxfp4 instantiations still spill 168 bytes), so each group is promoted before the next
//     issues and the other warpgroup's wgmmas keep the tensor pipe busy meanwhile (w8_plan has its gain). Tried
//     and dropped (H100 80GB HBM3, 2026-11-28, bench/probes/w8_gemm.py, same call, GEMM us, int4 / mxfp4): groups of
//     32 x rows through two temporaries (16 registers each), one always in flight: 8192^2 M = 1024 148.7 / 156.1 ->
//     167.2 / 168.6, M = 256 49.4 / 50.6 -> 52.0 / 52.6, 28672x8192 M = 256 155.0 / 163.2 -> 172.1 / 174.0 (ptxas
//     spilled 136 / 188 bytes in the int4-with-zeros / mxfp4 instantiations, and m64n32k32 is half the work a wgmma).
//     Also dropped (same card, 2026-11-28, one call, GEMM us, int4 / mxfp4): the decoded weights stored to shared
//     memory (two 16 KB buffers, 128-byte swizzle, wgmma with both operands there) so that the freed A registers hold a
//     second temporary: 8192^2 M = 1024 148.9 / 154.9 -> 172.8 / 185.4, M = 256 49.0 / 50.6 -> 53.4 / 57.5, M = 4096
//     604.0 / 633.6 -> 692.7 / 744.1, bit-identical output. An m64n64k32 wgmma reading both operands from shared memory
//     takes 4 KB in its 32 cycles, the whole 128 B a cycle of the SM's shared memory, and A is read again for each of
//     the four quarters (ptxas also spilled 80-352 bytes). ncu of this kernel (8192^2 M = 1024, int4): tensor pipe 52%
//     active, L2 30%, issue 35%, 0.48 eligible warps a scheduler; stalls: waits 19%, long scoreboard 18% (4% the
//     producer's empty-slot wait), wgmma waits 18%. So the 256-row tile is bound by each warpgroup's issue -> wait ->
//     promote latency, not by L2.
//   - Split-K over blockIdx.y (a power of two, >= 8 chunks a split) when the tiles would not fill the GPU: the
//     partials times s[m] are summed in split order inside the tile's thread-block cluster (distributed shared
//     memory, hopper.cuh cluster_reduce_tile) where those clusters are resident at once, else through a float32
//     workspace and common.cuh's fixed-order reduce kernel.
//   - after_act (the op's call, right after csrc/cuda/act_e4m3.cu): programmatic dependent launch; the producer
//     loads the first 8 stages' weight tiles before pdl_wait, so they arrive while the quantizer still runs.
// Measured (H100 80GB HBM3, 2026-11-27, bench/probes/w8_gemm.py, 8192^2 int4 g128, do_bench): GEMM alone M = 256
// 50.9-52.7 us (bf16 cuBLAS 65.1), quantizer + GEMM from a CUDA graph 57.8 serialized, 55.6 with after_act. What
// bounds it and what was tried: README.md, section W4A8.
#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "api.h"
#include "common.cuh"
#include "hopper.cuh"
#include "wgmma.cuh"

namespace fourbit_cuda {
namespace {

constexpr int kW8Rows = 128;  // weight rows a CTA (two consumer warpgroups of 64)
constexpr int kW8K = 128;     // K a stage: one 128-byte swizzle row of x8
constexpr int kW8Cons = 256;  // consumer threads; the warpgroup after them is the producer
constexpr int kW8Threads = kW8Cons + 128;
constexpr int kW8ProdRegs = 40, kW8ConsRegs = 232;  // setmaxnreg, as gemm_rs.cu (its comment has the rule)
static_assert(kW8Cons * kW8ConsRegs + (kW8Threads - kW8Cons) * kW8ProdRegs <= kW8Threads * ((65536 / kW8Threads) & ~7),
              "setmaxnreg's registers come from the CTA's own launch allocation");

template <int BN> struct W8Smem {
  static constexpr int X = BN * kW8K;           // x8 tile [BN rows][128 K], 128-byte swizzle
  static constexpr int W = kW8Rows * kW8K / 2;  // codes [128 rows][64 bytes]
  static constexpr int STAGE = X + W;
  static constexpr int S = BN == 256 ? 4 : 8;   // stages (a power of two: index and phase are a mask and a shift;
                                                //   8 of BN = 256's 40 KB do not fit)
  static constexpr int BAR = S * STAGE;         // full[s] at BAR + 8 s, empty[s] at BAR + 8 (S + s)
  static constexpr int BYTES = BAR + 16 * S + 1024;  // + the 1024-byte alignment of the swizzled tiles
  static_assert(BN * (kW8Rows + 4) * 4 <= BAR, "a split's partial [BN][128 + 4] float fits over the stages");
  static_assert(STAGE % 1024 == 0, "stages keep the 1024-byte alignment of the swizzle atom");
  static_assert(BYTES <= 232448, "more than the 227 KB of shared memory a Hopper CTA may use");
};

struct W8Params {
  const void* scales; const uint8_t* zeros; const float* xs;  // scales: float32 (int4) or E8M0 bytes (mxfp4); xs [M]
  const void* bias; void* out; float* ws;
  int M, N, K, G, per, mt;  // per: chunks a split; mt: M tiles (blockIdx.x % mt)
  uint32_t gmul; int gshr;  // chunk / (G / 128) = umulhi(chunk, gmul) >> gshr (gmul 0: G = 128)
};

// A chunk's raw scales and zero points of the thread's two rows, loaded when the chunk two before it is decoded: nothing
// consumes them until use (scale * 512 at the load made each load's latency a stall, 24% of the samples: H100, ncu,
// 2026-11-27; ptxas still moves these loads later, see bench/benchmarks_history.md).
// mxfp4: z[r] holds the chunk's four E8M0 exponent bytes of row r (groups of 32 K, byte i = group i); the decode
// sets s[r] to the promotion factor 2^(e_max - 127) (e_max: their largest), one chunk before the promotion uses it.
struct W8Group { float s[2]; uint32_t z[2]; };

// Four codes (one a byte, 0..15) minus their zero bytes as E4M3 bytes (sign << 7) | |q - z|: (q - z) * 2^-9 exactly.
// Each byte of codes + 0x80808080 - zb is 0x80 + q - z in [0x71, 0x8f]: no carry or borrow crosses a byte, and its
// bit 7 is clear exactly when q < z.
__device__ __forceinline__ uint32_t w8_operand(uint32_t codes, uint32_t zb) {
  const uint32_t neg = ~(codes + 0x80808080u - zb) & 0x80808080u;  // bit 7 of each byte: q < z
  return __vabsdiffu4(codes, zb) | neg;
}

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {  // PTX prmt, generic mode
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;\n" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}

// mxfp4: the magnitude table of one (row, 32-K group): bytes m = 0..7 of (t0, t1) are E4M3(v_m * 2^d), v_m the E2M1
// magnitudes (0, .5, 1, 1.5, 2, 3, 4, 6) and d = e_group - e_max (<= 0) its exponent below the 128-K window's
// largest. E4M3(v_m) for m >= 1 is 0x2c + 4 m (0.5 = 0x30 ... 6 = 0x4c), and 2^d subtracts 8 |d| from each byte:
// exact while every byte stays a normal (d >= -5; the host's fold check guarantees it for groups with a nonzero
// code, and an all-zero group only reads byte 0, which is 0 for any d).
__device__ __forceinline__ void mx_table(int d, uint32_t& t0, uint32_t& t1) {
  t0 = 0x3c383000u + uint32_t(8 * d) * 0x01010100u;
  t1 = 0x4c484440u + uint32_t(8 * d) * 0x01010101u;
}
// Four E2M1 codes (nibbles 0-3 of w: the selectors w & 0x7777 pick their magnitudes) -> E4M3 bytes: the table
// lookup, then bit 7 set where the code's sign is: PRMT in sign-replicate mode over (w << 4, w) with sel_sign (0xd9c8
// for the codes in w's bytes 0-1, 0xfbea for bytes 2-3) gives 0xff in exactly those bytes.
__device__ __forceinline__ uint32_t mx_operand(uint32_t t0, uint32_t t1, uint32_t mag_sel, uint32_t w4, uint32_t w,
                                               uint32_t sel_sign) {
  return prmt(t0, t1, mag_sel & 0x7777u) | (prmt(w4, w, sel_sign) & 0x80808080u);
}

template <typename OT, bool HZ, int BN, bool MX>
__global__ void __launch_bounds__(kW8Threads, 1)
gemm_w4a8_kernel(W8Params p, const __grid_constant__ CUtensorMap xmap, const __grid_constant__ CUtensorMap qmap) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  pdl_trigger();  // the split-K reduce after it may launch now (it waits for this grid: common.cuh)
  using L = W8Smem<BN>;
  constexpr int S = L::S;
  extern __shared__ __align__(1024) uint8_t w8_dyn[];
  uint8_t* base = w8_dyn + ((1024 - (smem_u32(w8_dyn) & 1023)) & 1023);
  const uint32_t sbase = smem_u32(base), bars = sbase + L::BAR;
  const int tid = threadIdx.x;
  const int m0 = int(blockIdx.x % unsigned(p.mt)) * BN, n0 = int(blockIdx.x / unsigned(p.mt)) * kW8Rows;
  const int c_lo = int(blockIdx.y) * p.per, nch = min(p.K / kW8K, c_lo + p.per) - c_lo;
  // The consumers' loop runs whole steps of 4 chunks (nq, no branch around a step: see the main loop); the extra
  // chunks past nch load chunk nch - 1 again and promote it with factor 0.
  const int nq = (nch + 3) & ~3;
  if (tid == kW8Cons) ring_init(bars, S, kW8Cons / 32);
  __syncthreads();

  if (tid >= kW8Cons) {  // ---- producer: one thread issues every load ----
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" :: "n"(kW8ProdRegs));
    if (tid == kW8Cons) {
      // The first S stages' weight tiles go before pdl_wait: with a.after_act this grid may start while the activation
      // quantizer before it still runs; the weights do not depend on it, x8 does (pdl_wait: a no-op otherwise).
      const int pre = min(nq, S);
      const auto wload = [&](int c, uint32_t full) {
        tma_load_2d(sbase + (c & (S - 1)) * L::STAGE + L::X, &qmap, (c_lo + min(c, nch - 1)) * (kW8K / 2), n0, full);
      };
      const auto xload = [&](int c, uint32_t full) {
        tma_load_2d(sbase + (c & (S - 1)) * L::STAGE, &xmap, (c_lo + min(c, nch - 1)) * kW8K, m0, full);
      };
      for (int c = 0; c < pre; ++c) wload(c, ring_acquire(bars, S, c, L::STAGE));
      pdl_wait();
      for (int c = 0; c < pre; ++c) xload(c, bars + 8 * c);
      for (int c = pre; c < nq; ++c) {
        const uint32_t full = ring_acquire(bars, S, c, L::STAGE);
        xload(c, full);
        wload(c, full);
      }
    }
    return;
  }

  // ---- consumers ----
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" :: "n"(kW8ConsRegs));
  const int lane = tid & 31, q = lane & 3;
  const int rl = (tid >> 7) * 64 + ((tid >> 5) & 3) * 16 + (lane >> 2);  // local row of a[0], a[2]; a[1], a[3]: + 8
  const int N = p.N, ng = p.K / p.G;
  const int64_t ja = int64_t(min(n0 + rl, N - 1)) * ng, jb = int64_t(min(n0 + rl + 8, N - 1)) * ng;

  auto load_group = [&](W8Group& g, int c) {  // chunk c's scales and zero points
    const int ck = c_lo + min(c, nch - 1);
    const int grp = MX ? 4 * ck : p.gmul ? int(__umulhi(uint32_t(ck), p.gmul) >> p.gshr) : ck;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t j = (r ? jb : ja) + grp;
      if (MX) {  // the chunk's 4 exponent bytes (K / 32 % 4 == 0 and a 4-byte aligned base: an aligned word)
        g.z[r] = __ldg(reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(p.scales) + j));
        g.s[r] = 0.f;
      } else {
        g.s[r] = __ldg(static_cast<const float*>(p.scales) + j);
        g.z[r] = HZ ? uint32_t(__ldg(p.zeros + j)) : 8u;
      }
    }
  };
  auto emax = [](uint32_t e4) {  // the largest of four exponent bytes
    return max(max(e4 & 0xffu, (e4 >> 8) & 0xffu), max((e4 >> 16) & 0xffu, e4 >> 24));
  };
  // chunk c's A fragments: a[s] for k32 step s = {row rl even K, row rl + 8 even, rl odd, rl + 8 odd} (see top)
  auto decode = [&](uint32_t (&a)[4][4], int c, W8Group& g) {
    const uint32_t cw = sbase + (c & (S - 1)) * L::STAGE + L::X + rl * 64 + q * 16;
    uint32_t w[2][4];  // [row rl, rl + 8][word s]
#pragma unroll
    for (int r = 0; r < 2; ++r)
      asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(w[r][0]), "=r"(w[r][1]), "=r"(w[r][2]), "=r"(w[r][3]) : "r"(cw + r * 512) : "memory");
    if (MX) {  // K 32 q .. 32 q + 31 of a row are its group q: one table a row
      uint32_t t0[2], t1[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const uint32_t em = emax(g.z[r]);
        mx_table(int((g.z[r] >> (8 * q)) & 0xffu) - int(em), t0[r], t1[r]);
        g.s[r] = __uint_as_float(em ? em << 23 : 0x00400000u);  // 2^(em - 127) (em = 0: 2^-127, a subnormal)
      }
#pragma unroll
      for (int s = 0; s < 4; ++s)
#pragma unroll
        for (int r = 0; r < 2; ++r) {  // a[s][r]: K 8 s .. 8 s + 3 of the word; a[s][2 + r]: 8 s + 4 .. 8 s + 7
          const uint32_t v = w[r][s], v4 = v << 4;
          a[s][r] = mx_operand(t0[r], t1[r], v, v4, v, 0xd9c8u);
          a[s][2 + r] = mx_operand(t0[r], t1[r], v >> 16, v4, v, 0xfbeau);
        }
      return;
    }
    const uint32_t zb[2] = {g.z[0] * 0x01010101u, g.z[1] * 0x01010101u};  // z in every byte
#pragma unroll
    for (int s = 0; s < 4; ++s)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        a[s][r] = w8_operand(w[r][s] & 0x0f0f0f0fu, zb[r]);
        a[s][2 + r] = w8_operand((w[r][s] >> 4) & 0x0f0f0f0fu, zb[r]);
      }
  };

  // Each wgmma group is 4 m64n64k32 steps (one 128-K chunk against 64 x rows) into one of two temporary
  // accumulators, so a warpgroup always has a group in flight while it promotes the other: BN = 128 issues the two
  // 64-row halves of a chunk into tmp[0] and tmp[1], BN = 64 alternates whole chunks between them. Why: waiting for
  // every wgmma of a chunk before the promotion and the next issue left the tensor pipe idle (41% active, ncu,
  // 8192^2 M = 256).
  float acc[BN / 2], tmp[BN == 256 ? 1 : 2][32];  // BN = 256: one temporary (acc 128 + tmp 32 + a 32 registers)
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) acc[i] = 0.f;
  uint32_t a[2][4][4];
  W8Group grp[4];  // chunk c's at c % 4
  const uint64_t xd0 = desc_sw128(sbase);
  // chunk c's wgmmas against x rows 64 h .. 64 h + 63 of its stage into t (scale-d 0 at the first: t = A B)
  const auto issue = [&](int c, int h, const uint32_t (&ac)[4][4], float (&t)[32]) {
    const uint32_t xlo = uint32_t(xd0) + uint32_t((c & (S - 1)) * (L::STAGE >> 4)) + uint32_t(h * (64 * kW8K >> 4));
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int s = 0; s < 4; ++s) wgmma_rs_e4m3<64>(t, ac[s], (xd0 & ~uint64_t(0xffffffffu)) | (xlo + 2 * s), s);
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
  };
  // acc (x rows 64 h ..) += f * t: int4 scale * 512 (exact: the operand's 2^-9 back); mxfp4 the window's largest
  // E8M0 scale (set by decode); 0 for chunks past nch. t[4 j + e]: weight row rl + 8 (e >> 1), x row 64 h + 8 j +
  // 2 q + (e & 1).
  const auto promote = [&](float (&t)[32], int h, const W8Group& g, bool live) {
#pragma unroll
    for (int i = 0; i < 32; ++i) asm volatile("" : "+f"(t[i]) :: "memory");  // read after the wait
    const float f[2] = {live ? (MX ? g.s[0] : g.s[0] * 512.f) : 0.f, live ? (MX ? g.s[1] : g.s[1] * 512.f) : 0.f};
#pragma unroll
    for (int i = 0; i < 32; ++i) acc[32 * h + i] = fmaf(f[(i >> 1) & 1], t[i], acc[32 * h + i]);
  };
  const auto release = [&](int c) {  // this warp is done with chunk c's stage: the producer may refill it
    __syncwarp();
    if (lane == 0) mbar_arrive(bars + 8 * (S + (c & (S - 1))));
  };
  // chunk c's operands (its stage, codes and zero points / exponents) and chunk c + 2's scales; u = c % 4, a compile-
  // time constant wherever it is called (the register arrays need constant indices)
  const auto next = [&](int c, int u) {
    mbar_wait(bars + 8 * (c & (S - 1)), (c / S) & 1);
    decode(a[u & 1], c, grp[u]);
    load_group(grp[(u + 2) & 3], c + 2);
  };
  const auto wait_mma = [](auto n) {  // all but the n newest wgmma groups are complete
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(decltype(n)::value) : "memory");
  };
  using W0 = std::integral_constant<int, 0>;
  using W1 = std::integral_constant<int, 1>;
  // The loop runs whole iterations of 4 chunks (nq; the chunks past nch promote with factor 0), each straight-line
  // code that starts and ends with no wgmma in flight: when a group stays in flight across the loop's back edge, ptxas
  // cannot order it against the next iteration's groups and serializes every wgmma of the kernel (C7514). Within an
  // iteration each wgmma.wait_group 1 retires all but the group issued just before it.
  load_group(grp[0], 0);
  load_group(grp[1], 1);
  next(0, 0);
  // chunks c0 .. c0 + 3 (chunk c0 decoded); fin: the last iteration (chunk c0 + 4 is not decoded)
  const auto iteration = [&](int c0, auto fin) {
    if constexpr (BN == 256) {
      // Chunk c: its four 64-row quarters in turn through the one temporary, each promoted once complete (the other
      // warpgroup's wgmmas fill the tensor pipe meanwhile); chunk c + 1 is decoded while c's first quarter runs.
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int c = c0 + u;
#pragma unroll
        for (int h = 0; h < 4; ++h) {
          issue(c, h, a[u & 1], tmp[0]);
          if (h == 0 && (u < 3 || !fin)) next(c + 1, (u + 1) & 3);
          wait_mma(W0());
          if (h == 3) release(c);
          promote(tmp[0], h, grp[u], c < nch);
        }
      }
    } else if constexpr (BN == 128) {
      // Chunk c: issue half 0 of c + 1, promote half 1 of c once complete, issue half 1 of c + 1, decode c + 2,
      // promote half 0 of c + 1 once complete: one half in flight while the other is promoted.
      issue(c0, 0, a[0], tmp[0]);
      issue(c0, 1, a[0], tmp[1]);
      next(c0 + 1, 1);
      wait_mma(W1());
      promote(tmp[0], 0, grp[0], c0 < nch);
#pragma unroll
      for (int u = 0; u < 3; ++u) {
        const int c = c0 + u;
        issue(c + 1, 0, a[(u + 1) & 1], tmp[0]);
        wait_mma(W1());
        release(c);
        promote(tmp[1], 1, grp[u], c < nch);
        issue(c + 1, 1, a[(u + 1) & 1], tmp[1]);
        if (u < 2 || !fin) next(c + 2, (u + 2) & 3);
        wait_mma(W1());
        promote(tmp[0], 0, grp[u + 1], c + 1 < nch);
      }
      wait_mma(W0());
      release(c0 + 3);
      promote(tmp[1], 1, grp[3], c0 + 3 < nch);
    } else {
      // Chunk c: issue c + 1, promote c once complete, decode c + 2 (chunk c + 1's group in flight meanwhile).
      issue(c0, 0, a[0], tmp[0]);
      next(c0 + 1, 1);
#pragma unroll
      for (int u = 0; u < 3; ++u) {
        const int c = c0 + u;
        issue(c + 1, 0, a[(u + 1) & 1], tmp[(u + 1) & 1]);
        wait_mma(W1());
        release(c);
        promote(tmp[u & 1], 0, grp[u], c < nch);
        if (u < 2 || !fin) next(c + 2, (u + 2) & 3);
      }
      wait_mma(W0());
      release(c0 + 3);
      promote(tmp[1], 0, grp[3], c0 + 3 < nch);
    }
  };
  int c0 = 0;
  for (; c0 + 4 < nq; c0 += 4) iteration(c0, std::false_type());
  iteration(c0, std::true_type());

  pdl_wait();  // xs and the stores: after the grid before this one (the quantizer, under after_act) has completed
  // acc[4 j + e]: weight row rl + 8 (e >> 1), x row 8 j + 2 q + (e & 1)
  if (gridDim.y > 1 && p.ws == nullptr) {  // split-K in a cluster (hopper.cuh cluster_reduce_tile): the partial, times
                                           // s[m], goes over the stages once both warpgroups' wgmmas are done
    asm volatile("bar.sync 1, %0;\n" :: "n"(kW8Cons) : "memory");
    float* part = reinterpret_cast<float*>(base);
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int mr = 8 * j + 2 * q + (e & 1);
        part[mr * (kW8Rows + 4) + rl + 8 * (e >> 1)] = m0 + mr < p.M ? acc[4 * j + e] * __ldg(p.xs + m0 + mr) : 0.f;
      }
    const auto reduce = [&](auto sp) {
      cluster_reduce_tile<OT, BN, decltype(sp)::value, kW8Rows, kW8Cons>(sbase, m0, n0, tid, p.M, N, nullptr, p.bias,
                                                                         p.out);
    };
    if (gridDim.y == 2) reduce(std::integral_constant<int, 2>());
    else if (gridDim.y == 4) reduce(std::integral_constant<int, 4>());
    else reduce(std::integral_constant<int, 8>());
    return;
  }
  const OT* bias = reinterpret_cast<const OT*>(p.bias);
  OT* out = reinterpret_cast<OT*>(p.out);
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int m = m0 + 8 * j + 2 * q + (e & 1), n = n0 + rl + 8 * (e >> 1);
      if (m < p.M && n < N)
        store_result<OT>(acc[4 * j + e] * __ldg(p.xs + m), m, n, p.M, N, p.ws, nullptr, 1.f, bias, out);
    }
  }
#else
  __trap();  // sm_90a only: the host never launches it elsewhere (tc_device_ok checks the device)
#endif
}

struct W8Plan { int bn, mt; int64_t tiles; int S, per; bool cluster; };

// S-CTA clusters of BN's kernels the current device holds at once (the registers do not bind).
template <int BN> int w8_resident(int S) {
  return resident_clusters(gemm_w4a8_kernel<__nv_bfloat16, false, BN, false>, kW8Threads, W8Smem<BN>::BYTES, S);
}

// The plan for x tiles of bn rows: the split count S, a power of two, keeps the CTAs within one wave (one CTA an SM)
// with at least 8 chunks (1024 K) a split. A tile's S <= 8 splits reduce inside their cluster when every tile's
// cluster is resident at once (as gemm_rs.cu's rs_plan), else through the workspace and the reduce kernel.
W8Plan w8_plan_bn(int64_t M, int64_t N, int64_t K, int bn) {
  const int mt = int((M + bn - 1) / bn);
  W8Plan r{bn, mt, ((N + kW8Rows - 1) / kW8Rows) * mt, 1, 0, false};
  splitk_plan(r.tiles, K / kW8K, 8, &r.S, &r.per);
  if (r.S > 1 && r.S <= 8) {
    static std::atomic<int> fits[3][kMaxDevices][4];  // [BN 64 / 128 / 256]: clusters_fit's cache
    r.cluster = clusters_fit(fits[bn == 64 ? 0 : bn == 128 ? 1 : 2], r.S, r.tiles, [bn](int s) {
      return bn == 64 ? w8_resident<64>(s) : bn == 128 ? w8_resident<128>(s) : w8_resident<256>(s);
    });
  }
  return r;
}

// x tiles of 64 rows up to M = 64; above M = 128 256 rows where that needs no split, or clustered splits of >= 32
// chunks; else 128. Why (H100 80GB HBM3, 2026-11-28, bench/probes/w8_gemm.py, GEMM alone, us, int4 / mxfp4, 128 ->
// 256-row tiles in the same call): each decoded weight and each 24 -> 40 KB chunk serves twice the x rows.
//   S = 1: 8192^2 M = 1024 180.1 / 188.4 -> 149.7 / 156.2, M = 4096 759.0 / 771.1 -> 612.7 / 644.9; 28672x8192
//          M = 256 184.0 / 191.4 -> 155.5 / 162.7; 4096^2 M = 1024 58.9 / 61.1 -> 50.1 / 52.2, M = 2048 112.1 /
//          117.0 -> 94.0 / 98.1.
//   S = 2 in clusters: 8192^2 M = 256 (32 chunks a split) 52.6 / 54.4 -> 49.2 / 50.7, but 4096^2 M = 512 (16 chunks)
//          31.6 / 33.2 -> 32.2 / 32.7 and 36.4 -> 38.2 with the quantizer: the cluster's reduce over 256 x rows
//          costs more where each split is short.
//   S = 4 through the workspace (32 clusters of 4 do not fit): 4096^2 M = 256 23.6 / 24.0 -> 38.0 / 37.2.
W8Plan w8_plan(int64_t M, int64_t N, int64_t K) {
  static const int env = env_choice("FOURBIT_W8_BN", {64, 128, 256});  // fixes the x tile, for experiments
  if (env) return w8_plan_bn(M, N, K, env);
  if (M <= 64) return w8_plan_bn(M, N, K, 64);
  if (M > 128) {
    const W8Plan r = w8_plan_bn(M, N, K, 256);
    if (r.S == 1 || (r.cluster && r.per >= 32)) return r;
  }
  return w8_plan_bn(M, N, K, 128);
}

template <typename OT, bool HZ, int BN, bool MX>
void launch_w8(const LinearArgs& a, const W8Params& p, const W8Plan& r, cudaStream_t st) {
  using L = W8Smem<BN>;
  const auto fn = gemm_w4a8_kernel<OT, HZ, BN, MX>;
  static std::atomic<int> attr[kMaxDevices];
  smem_limit(attr, fn, L::BYTES);
  const CUtensorMap xmap = tma_map_2d(a.x, CU_TENSOR_MAP_DATA_TYPE_UINT8, a.K, a.M, a.K, kW8K, BN,
                                      CU_TENSOR_MAP_SWIZZLE_128B, "linear_w4a8");
  const CUtensorMap qmap = tma_map_2d(a.q, CU_TENSOR_MAP_DATA_TYPE_UINT8, a.K / 2, a.N, a.K / 2, kW8K / 2, kW8Rows,
                                      CU_TENSOR_MAP_SWIZZLE_NONE, "linear_w4a8");
  cudaLaunchAttribute at[2];  // a tile's splits: one cluster (cluster_reduce_tile); programmatic dependent launch
  const cudaLaunchConfig_t cfg = cluster_config(dim3(unsigned(r.tiles), unsigned(r.S)), kW8Threads, L::BYTES, st,
                                                r.cluster ? r.S : 0, at, a.after_act);
  cudaLaunchKernelEx(&cfg, fn, p, xmap, qmap);
  check_launch("fourbit gemm_w4a8");
}

template <typename OT, bool HZ, bool MX>
void launch_w8_bn(const LinearArgs& a, const W8Params& p, const W8Plan& r, cudaStream_t st) {
  if (r.bn == 64) launch_w8<OT, HZ, 64, MX>(a, p, r, st);
  else if (r.bn == 128) launch_w8<OT, HZ, 128, MX>(a, p, r, st);
  else launch_w8<OT, HZ, 256, MX>(a, p, r, st);
}

template <typename OT>
void launch_w8_t(const LinearArgs& a, const W8Params& p, const W8Plan& r, cudaStream_t st) {
  if (a.sk == SK_E8M0) launch_w8_bn<OT, false, true>(a, p, r, st);
  else if (a.zeros) launch_w8_bn<OT, true, false>(a, p, r, st);
  else launch_w8_bn<OT, false, false>(a, p, r, st);
}

}  // namespace

bool linear_w4a8_takes(const LinearArgs& a) {
  const bool mx = a.sk == SK_E8M0;  // mxfp4: E8M0 scales a 32-K group, no zero points (int4: float32 scales)
  if (a.qk != QK_NIB4 || (a.sk != SK_F32 && !mx) || a.row_scale == nullptr || a.M <= 0 || a.M > (int64_t(1) << 24))
    return false;
  if (a.N <= 0 || a.N > (int64_t(1) << 30) || a.K <= 0 || a.K % kW8K || a.K > (int64_t(1) << 30)) return false;
  if (mx ? a.G != 32 || a.zeros : a.G <= 0 || a.G % kW8K || a.K % a.G) return false;
  if (a.M * a.N > (int64_t(1) << 40)) return false;
  const auto al = [](const void* v, unsigned b) { return (reinterpret_cast<uintptr_t>(v) & (b - 1)) == 0; };
  return al(a.x, 16) && al(a.q, 16) && (!mx || al(a.scales, 4)) && tc_device_ok();
}

int64_t linear_w4a8_workspace(int64_t M, int64_t N, int64_t K) {
  if (M <= 0 || N <= 0 || K < kW8K) return 0;
  const W8Plan r = w8_plan(M, N, K);
  return r.S > 1 && !r.cluster ? int64_t(r.S) * M * N : 0;
}

void linear_w4a8(const LinearArgs& a, uintptr_t stream) {
  if (!linear_w4a8_takes(a)) throw std::invalid_argument("linear_w4a8: unsupported shape, format, alignment or device");
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  const W8Plan r = w8_plan(a.M, a.N, a.K);
  if (!r.cluster) require_splitk_ws(a, r.S, "linear_w4a8");
  W8Params p{};
  p.scales = a.scales; p.zeros = a.zeros; p.xs = a.row_scale;
  p.bias = a.bias; p.out = a.out; p.ws = r.cluster ? nullptr : a.ws;
  p.M = int(a.M); p.N = int(a.N); p.K = int(a.K); p.G = int(a.G); p.per = r.per; p.mt = r.mt;
  if (a.sk == SK_F32 && a.G > kW8K) divider(int(a.G / kW8K), &p.gmul, &p.gshr);
  else { p.gmul = 0; p.gshr = 0; }
  if (a.xt == XT_BF16) launch_w8_t<__nv_bfloat16>(a, p, r, st);
  else if (a.xt == XT_F16) launch_w8_t<__half>(a, p, r, st);
  else launch_w8_t<float>(a, p, r, st);
  if (!r.cluster) reduce_splits(a, r.S, st);  // the partials carry s[m]; a.gscale is null: split order sum, + bias
}

}  // namespace fourbit_cuda
