// Register-A wgmma GEMM for 4-bit weights on Hopper (sm_90a): y[M, N] = x[M, K] @ dequant(W)^T (+ bias), fp32
// accumulation, bf16 / fp16 x. The WEIGHTS are the wgmma's A operand, decoded straight into registers, and x is B
// (a TMA tile in shared memory), so the wgmma's M runs over weight rows and its N over x rows.
//   - A CTA owns 128 weight rows and BN (64 / 128 / 256) x rows: two consumer warpgroups (64 weight rows each, one
//     m64nBNk16 chain) and one producer warpgroup. For each 64-K chunk the producer's first thread loads, by TMA, the
//     x tile (BN rows x 128 bytes, 128-byte swizzle) and the 128 rows x 32 bytes of packed codes into one of S stages
//     (full / empty mbarriers). The producer warpgroup gives registers to the consumers (setmaxnreg 40 / 232): at
//     BN = 256 the 128 accumulators fit, so each decoded weight serves 256 x rows (rs_plan has the numbers).
//   - A consumer thread (g, q) decodes the A fragments of its warp's 16 rows: for k16 step kk it needs pair q (byte
//     q) of code words 2 kk and 2 kk + 1 of rows g and g + 8. It reads both rows' 32 bytes (LDS.128, the 4 lanes of
//     a quad read the same address: a broadcast), and one PRMT puts byte q next to its lane bits, (byte << 8) |
//     lane << 2: the address of its own-bank entry in the byte-pair table (nib4.cuh, 256-byte entries). The pair is
//     then (pair - zero) * scale in x's dtype, the GEMV's decode (gemv.cu), so the GEMV's error bound holds.
//   - Fragments are triple-buffered (double at 256 x rows): chunk c's 4 wgmmas are issued as one group, then the
//     consumer waits for group c - 2 (c - 1; releasing its stage) and decodes chunk c + 1 while the tensor core runs
//     groups c - 1 and c. The producer starts the first S chunks' loads before the table is built.
//   - Split-K over blockIdx.y when the tiles would not fill the GPU. A tile's S <= 8 splits form one thread-block
//     cluster and sum their partials in split order through distributed shared memory (hopper.cuh's
//     cluster_reduce_tile) where all those clusters are resident at once; otherwise they go through a float32
//     workspace and common.cuh's fixed-order reduce kernel (rs_plan). blockIdx.x runs over M tiles first, so the
//     CTAs that share a weight tile run together and read it from DRAM once. Rows past N decode zeros (TMA fills
//     them; scale loads are clamped) and are never stored; x rows past M arrive as zeros.
// Why (gemm_tc.cu's producers write the decoded tile to shared memory for an SS wgmma; their instruction stream
// bounds it at M = 128-256, ~40% of the tensor pipe): here the decode is 3-4 instructions a code pair in the
// consumer's own registers, overlapped with the asynchronous wgmma, and shared memory carries only x and the codes.
// Measured (bench/gpu_rs.py, CUDA graphs, us, int4 / nf4 / nvfp4 / mxfp4; python/fourbit/ops/cuda.py has the
// five-shape H200 run the route window comes from): H200 8192^2 M = 64 36.6 / 34.4 / 40.3 / 37.1 (small-M GEMM 47.4 /
// 46.0 / 47.9 / 46.0), M = 128 46.0 / 41.6 / 48.4 / 44.3 (gemm_tc 55.8 / 60.4 / 61.4 / 60.5), M = 256 76.4 / 68.2 /
// 79.3 / 75.0 (gemm_tc 84.8 / 87.8 / 89.3 / 88.2; bf16 cuBLAS 55.5).
// What bounds it (H100 80GB HBM3, 2026-11-27, 8192^2 int4 M = 256, ncu): tensor pipe 51% active, issue slots 35%,
// 0.52 eligible of 2.25 warps a scheduler, L2 34%, stall samples spread (fixed-latency waits 27%, full-barrier
// waits ~7%). ~125 SASS instructions a consumer warp a chunk (16 each of PRMT, address add, LDS, HMUL2). With the
// decode and the code loads switched off (an experiment, wrong results) the same pipeline took 59.4 us at M = 256
// and 228.4 at M = 1024 (full kernel 76.2 / 303.8, bf16 cuBLAS 58.4 / 197.4): the TMA + wgmma skeleton itself runs
// at ~63% of the tensor pipe, so the decode costs the other ~20%.
// Sixteenth session (H200, 2026-11-27, bench/gpu_rs.py, each A/B in one run): the cluster reduce (above) 4096^2
// M = 256 27.6 / 25.0 / 28.4 -> 24.4 / 23.0 / 25.4 us (int4 / nf4 / nvfp4), 8192^2 M = 64 36.6 -> 33.8 (int4);
// three fragment buffers at BN = 64: 8192^2 M = 64 33.8 / 32.1 / 38.4 / 36.1 -> 33.3 / 31.7 / 37.8 / 33.4 (+ mxfp4).
// Then a producer warpgroup with setmaxnreg (288 -> 384 threads; ptxas compiles the consumers for 232 registers, no
// spill, no C7512; an earlier session's 288-thread CTA could not use it) gave 256-row x tiles and a third fragment
// buffer at 128 rows: 8192^2 M = 256 int4 77.6 -> 71.4 us (128 rows) -> 58.8 (256 rows), M = 1024 311.5 -> 221.2.
// Tried and dropped then: the table lookups of chunk c + 1 moved before the wait for group c - 1 (only the scale
// multiplies after it): 0-6% slower (8192^2 M = 256 nf4 68.2 -> 71.2), so the decode's latency after the wait is
// not what bounds it; 2 CTAs an SM at BN = 64 (4 stages fit 113 KB): ptxas then caps 288 threads at 96 registers,
// spills 230-440 bytes and serializes the wgmmas (C7512); a split-K reduce kernel with 4 elements a thread: 1.9 ->
// 1.8 us, no change in a graph.
// Tried and dropped (twenty-third session, H100, 2026-11-27; numbers in bench/benchmarks_history.md): the prologue
// reordered (the producer's thread loading at once while the consumers alone build the table, a named barrier, the
// first scales before the build): no gain at 4096^2 M = 64, 8192^2 M = 64 int4 7% slower; the workspace splits summed
// by the tile's last split (a counter tagged with %gridid): %gridid repeats across CUDA-graph replays (the output was
// never stored), and the fences and CAS made the kernel 10.4 -> 16.2 us at 4096^2 M = 64; stage counts that are a
// multiple of the loop's 6-step groups (12 at BN = 64, 6 at BN = 128), so each step's stage and barrier addresses
// are constants (~7% fewer SASS instructions a step): 4096^2 M = 64 13.1-13.8 -> 13.9-14.5 us, 8192^2 M = 128 int4
// 41.5 -> 42.3 (bench/gpu_rs.py, two A/B passes).
// Twenty-fourth session (H100, 2026-11-27, bench/gpu_rs.py, CUDA graphs, us, A/B in one call, two passes): int4 with
// zero points decodes by bits at x tiles of <= 128 rows (CK = 1: no table build, no table loads; 3 integer
// instructions for a PRMT and an LDS): 4096^2 M = 64 13.5 -> 13.1, M = 128 16.8 -> 16.7, M = 256 23.4 -> 22.8;
// 8192^2 M = 64 32.4-32.5 -> 31.7-32.2, M = 128 41.4-41.7 -> 40.3 (mxfp4 unchanged beside it); at 256-row tiles it
// lost (4096^2 M = 1024 51.4-51.9 -> 53.1-53.5), so those keep the table. nvfp4's four scales a row and chunk become
// XT pairs through two e4m3x2 conversions (nib4.cuh e4m3_pairs) instead of four: a bf16 step's SASS 121-199 ->
// 109-140 instructions; 4096^2 M = 64 13.6-13.7 -> 13.2 us, M = 256 22.8-22.9 -> 22.3-22.4, M = 1024 51.5 ->
// 50.3-50.5; 8192^2 M = 64 34.4 -> 33.1-33.3, M = 128 40.0-40.2 -> 39.4, M = 256 57.3 -> 56.1 (int4 unchanged beside
// it). Tried and dropped then: three consumer warpgroups at 64 x rows (192 weight rows a CTA, 512 threads, consumers
// at 160 registers, splits of any count): no faster per weight row (4096^2 M = 64 13.4 -> 14.7 with 22 tiles x 6
// splits, 15.1 with 4; 8192^2 32.2 -> 33.1 with 43 x 3), so the loop is bound per SM, not by each warp's latency;
// ncu's busiest unit stayed the L1 data pipe at 42-44% of the kernel's time either way.
// Tried and dropped (twenty-ninth session, H100 80GB HBM3, 2026-11-28, bench/gpu_rs.py --quick --ms 64, CUDA graphs,
// us, int4 / nf4 / nvfp4 / mxfp4, both in one call): where 128-row tiles split K through the workspace, 64-row tiles
// whose two consumer warpgroups took alternate chunks (the second's accumulators added to the first's through shared
// memory), so twice the tiles needed half the splits and those fit in 2-CTA clusters (no workspace, no reduce kernel):
// 4096^2 M = 64 13.1 / 13.2 / 13.5 / 13.1 -> 14.2 / 14.5 / 14.5 / 14.4 (8192^2 unchanged, not taken). Each warpgroup
// then sees every other stage, half the lookahead of the shared ring. tests/test_cuda_gemm_rs.py passed on it (commit
// 213aca4, reverted).
// Tried and dropped (fifteenth session): the x tile multicast over CTA pairs (clusters of 2 along N, each CTA loading
// half the rows for both, the empty barriers counting both CTAs' consumers): no change on an H200 (8192^2 M = 256
// int4 80.6 against 79.6 us unpaired) -- L2 bandwidth is not the bound; a 256-row x tile at 288 threads: at ptxas's
// 168-register budget (128 accumulators) it serialized the wgmmas (C7512) and spilled (the setmaxnreg layout above
// fixed that). Byte-wise scale loads (one per group) made nvfp4 (4 a row a chunk) ~20% slower than int4 with the
// decode off: a row's scales of a chunk are now one load.
#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <type_traits>

#include "api.h"
#include "common.cuh"
#include "hopper.cuh"
#include "nib4.cuh"
#include "wgmma.cuh"

namespace fourbit_cuda {
namespace {

constexpr int kRsRows = 128;       // weight rows a CTA (two consumer warpgroups of 64: the wgmma's M)
constexpr int kRsK = 64;           // K a stage: one 128-byte swizzle row of x
constexpr int kRsCons = 256;       // consumer threads; the warpgroup after them is the producer
constexpr int kRsThreads = kRsCons + 128;
// Registers a thread after setmaxnreg: the launch gives each of the 384 threads 168 (65536 / 384, launch bounds);
// the producer warpgroup hands 128 of them back, which lets ptxas compile the consumers' code for 232 (64 accumulator
// registers at BN = 128 plus three fragment buffers, or 128 at BN = 256) without spills or serialized wgmmas.
// setmaxnreg.inc waits until the CTA's own launch registers cover it: a larger sum hangs the CTA (an H100 call did
// at two CTAs an SM, 2026-11-27). The launch gives (65536 / CTAs an SM / threads) rounded down to 8 a thread.
constexpr int kRsProdRegs = 40, kRsConsRegs = 232;
static_assert(kRsCons * kRsConsRegs + (kRsThreads - kRsCons) * kRsProdRegs <= kRsThreads * ((65536 / kRsThreads) & ~7),
              "setmaxnreg's registers come from the CTA's own launch allocation");
constexpr int kRsE = 64;           // byte-pair table entry stride in words (256 bytes: see the lookup)

constexpr int kRsP = kRsRows + 4;  // float stride of a split's partial x row (hopper.cuh cluster_reduce_tile's)

template <int BN> struct RsSmem {
  static constexpr int X = BN * kRsK * 2;       // x tile [BN rows][64 K], 128-byte swizzle
  static constexpr int W = kRsRows * kRsK / 2;  // codes [128 rows][32 bytes]
  static constexpr int STAGE = X + W;
  static constexpr int S = BN == 256 ? 4 : 8;  // a power of two: the stage index and phase are a mask and a shift
  static constexpr int TABLE = S * STAGE;
  static constexpr int BAR = TABLE + 256 * kRsE * 4;  // full[s] at BAR + 8 s, empty[s] at BAR + 8 (S + s)
  static constexpr int BYTES = BAR + 16 * S + 1024;   // + the 1024-byte alignment of the swizzled tiles
  static_assert(BN * kRsP * 4 <= TABLE, "a split's partial [BN][kRsP] float fits over the stages");
  static_assert(STAGE % 1024 == 0, "stages keep the 1024-byte alignment of the swizzle atom");
  static_assert(BYTES <= 232448, "more than the 227 KB of shared memory a Hopper CTA may use");
};

struct RsParams {
  const void* scales; const uint8_t* zeros; const float* gscale; const float* lut;
  const void* bias; void* out; float* ws;  // ws: split-K partials outside a cluster (null: the cluster reduces)
  int M, N, K, G, per, mt;  // per: 64-K chunks per split; mt: M tiles (blockIdx.x % mt)
  uint32_t gmul; int gshr;  // chunk / (G / 64) = umulhi(chunk, gmul) >> gshr (GS = 1, divider; gmul 0: G = 64)
};

// One chunk's raw scales (and zero bytes) of the thread's two rows: GS groups a chunk (G = 16: 4, G = 32: 2, else 1).
template <int GS, bool HZ> struct RsRaw { uint32_t s[2][GS], z[2][HZ ? GS : 1]; };

// CK: how a code pair becomes its XT pair: 0 through the byte-pair table (any LUT), 1 by bits for int4 with zero
// points (lut[c] = c; the table is not built). Both give the same bits: the table's pair is exact, and so are
// (M + c) - (M + z) = c - z, so the one rounding is the scale's multiply either way.
template <typename XT, int SK, int GS, bool HZ, int BN, int CK>
__global__ void __launch_bounds__(kRsThreads, 1)
gemm_rs_kernel(RsParams p, const __grid_constant__ CUtensorMap xmap, const __grid_constant__ CUtensorMap qmap) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  pdl_trigger();  // the split-K reduce after it may launch now (it waits for this grid: common.cuh)
  using L = RsSmem<BN>;
  constexpr int S = L::S;
  extern __shared__ __align__(1024) uint8_t rs_dyn[];
  uint8_t* base = rs_dyn + ((1024 - (smem_u32(rs_dyn) & 1023)) & 1023);
  const uint32_t sbase = smem_u32(base), bars = sbase + L::BAR, tb = sbase + L::TABLE;
  const int tid = threadIdx.x;
  const int m0 = int(blockIdx.x % unsigned(p.mt)) * BN, n0 = int(blockIdx.x / unsigned(p.mt)) * kRsRows;
  const int c_lo = int(blockIdx.y) * p.per, nch = min(p.K / kRsK, c_lo + p.per) - c_lo;
  // The producer thread initializes the barriers and starts the first S chunks' loads before the table is built, so
  // their DRAM latency overlaps the build (the empty barriers' first waits pass at once).
  if (tid == kRsCons) ring_init(bars, S, kRsCons / 32);
  // Chunk c's loads into stage c % S, once the consumers released chunk c - S: by the producer's one thread.
  auto produce = [&](int c) {
    const uint32_t full = ring_acquire(bars, S, c, L::STAGE), st = sbase + (c & (S - 1)) * L::STAGE;
    tma_load_2d(st, &xmap, (c_lo + c) * kRsK, m0, full);
    tma_load_2d(st + L::X, &qmap, (c_lo + c) * (kRsK / 2), n0, full);
  };
  if (tid == kRsCons)
    for (int c = 0; c < min(nch, S); ++c) produce(c);
  if (CK == 0) build_pair_table<XT, kRsThreads, kRsE>(reinterpret_cast<uint32_t*>(base + L::TABLE), p.lut);
  __syncthreads();  // publishes the table and the barriers' initialization

  if (tid >= kRsCons) {  // ---- producer: one thread issues every load ----
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" :: "n"(kRsProdRegs));
    if (tid == kRsCons)
      for (int c = S; c < nch; ++c) produce(c);
    return;
  }

  // ---- consumers ----
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" :: "n"(kRsConsRegs));
  const int lane = tid & 31, q = lane & 3;
  const int rl = (tid >> 7) * 64 + ((tid >> 5) & 3) * 16 + (lane >> 2);  // local row of a[0], a[2]; a[1], a[3]: + 8
  const int N = p.N, ng = p.K / p.G;
  const int64_t ja = int64_t(min(n0 + rl, N - 1)) * ng, jb = int64_t(min(n0 + rl + 8, N - 1)) * ng;
  const uint32_t lb = uint32_t(lane) << 2, sel = 0x5504u | (uint32_t(q) << 4);  // PRMT: lb byte 0, code byte q, 0, 0

  // chunk c's scales / zeros: a row's GS raw values are adjacent (one 1 / 2 / 4 / 8-byte load). Why: one byte load
  // each (8 a chunk for nvfp4) made nvfp4 ~20% slower than int4 even with the decode switched off (H100, 2026-11-27).
  // The rows' pointers are formed once, so a chunk's address is one 32-bit offset added to them: 4-9 fewer of a step's
  // ~120-170 SASS instructions than the 64-bit index arithmetic (signed halving included), ~1%
  // (bench/benchmarks_history.md).
  constexpr int SB = SK == SK_F32 ? 4 : 1;  // bytes a raw scale
  constexpr bool S4 = SK == SK_E4M3 && GS == 4;  // nvfp4: R.s[r][0] keeps the row's word of 4 scales (e4m3_pairs)
  const uint8_t* const srow[2] = {static_cast<const uint8_t*>(p.scales) + ja * SB,
                                  static_cast<const uint8_t*>(p.scales) + jb * SB};
  const uint8_t* const zrow[2] = {HZ ? p.zeros + ja : nullptr, HZ ? p.zeros + jb : nullptr};
  auto load_raw = [&](RsRaw<GS, HZ>& R, int c) {
    const uint32_t ck = uint32_t(c_lo + c);
    const uint32_t grp = GS > 1 ? ck * GS : p.gmul ? __umulhi(ck, p.gmul) >> p.gshr : ck;  // < 2^26 (K <= 2^30)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const uint8_t* sp = srow[r] + grp * SB;
      if (SK == SK_F32 && GS == 2) {
        const uint2 v = __ldg(reinterpret_cast<const uint2*>(sp));
        R.s[r][0] = v.x;
        R.s[r][GS - 1] = v.y;
      } else if (SK != SK_F32 && GS > 1) {
        const uint32_t v = GS == 4 ? __ldg(reinterpret_cast<const uint32_t*>(sp))
                                   : __ldg(reinterpret_cast<const uint16_t*>(sp));
        if (S4) R.s[r][0] = v;
#pragma unroll
        for (int i = 0; i < GS && !S4; ++i) R.s[r][i] = (v >> (8 * i)) & 0xffu;
      } else {
        R.s[r][0] = ld_scale<SK>(sp, 0);
      }
      if (HZ) {
        const uint8_t* zp = zrow[r] + grp;
        const uint32_t z = GS == 2 ? __ldg(reinterpret_cast<const uint16_t*>(zp)) : __ldg(zp);
#pragma unroll
        for (int i = 0; i < (HZ ? GS : 1); ++i) R.z[r][i] = (z >> (8 * i)) & 0xffu;
      }
    }
  };
  // chunk c's A fragments: a[kk] for k16 step kk = {row rl words 2kk, row rl + 8 word 2kk, rl 2kk + 1, rl + 8 2kk + 1}
  auto decode = [&](uint32_t (&a)[4][4], int c, const RsRaw<GS, HZ>& R) {
    const uint32_t cw = sbase + (c & (S - 1)) * L::STAGE + L::X + rl * 32;
    uint32_t spr[2][GS];  // [row rl, rl + 8][group]: the scales as XT pairs
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      if constexpr (S4) {
        e4m3_pairs<XT>(R.s[r][0], spr[r]);
      } else {
#pragma unroll
        for (int i = 0; i < GS; ++i) spr[r][i] = scale_pair<XT, SK>(R.s[r][i]);
      }
    }
    uint32_t w[2][8];  // [row rl, rl + 8][word]
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int h = 0; h < 2; ++h)
        asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(w[r][4 * h]), "=r"(w[r][4 * h + 1]), "=r"(w[r][4 * h + 2]), "=r"(w[r][4 * h + 3])
                     : "r"(cw + r * 256 + h * 16) : "memory");
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const int i = kk * GS / 4;
#pragma unroll
      for (int e = 0; e < 4; ++e) {  // register e: row rl + 8 (e & 1), word 2 kk + (e >> 1)
        const int r = e & 1;
        uint32_t addr, v;
        if (CK == 1) {  // lut[c] = c: the pair (M + lo, M + hi) by bits, M = 128 (bf16) / 1024 (fp16), minus M + z
          uint32_t b;  // byte q alone; times 0x1001 puts its low code in bits 0-3 and its high code in bits 16-19
          asm("prmt.b32 %0, %1, 0, %2;\n" : "=r"(b) : "r"(w[r][2 * kk + (e >> 1)]), "r"(0x4440u | uint32_t(q)));
          constexpr uint32_t MAG = std::is_same<XT, __half>::value ? 0x64006400u : 0x43004300u;
          v = ((b * 0x1001u) & 0x000f000fu) | MAG;
          const float z = float(R.z[r][HZ ? i : 0]) + (std::is_same<XT, __half>::value ? 1024.f : 128.f);
          v = hsub2<XT>(v, pack2<XT>(z, z));
        } else {
          asm("prmt.b32 %0, %1, %2, %3;\n" : "=r"(addr) : "r"(w[r][2 * kk + (e >> 1)]), "r"(lb), "r"(sel));
          asm("ld.shared.b32 %0, [%1];\n" : "=r"(v) : "r"(addr + tb));
          if (HZ) {
            const float z = float(R.z[r][HZ ? i : 0]);
            v = hsub2<XT>(v, pack2<XT>(z, z));
          }
        }
        a[kk][e] = hmul2<XT>(v, spr[r][i]);
      }
    }
  };

  float acc[BN / 2];
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) acc[i] = 0.f;
  // NA fragment buffers: chunk c + 1 is decoded while groups c - NA + 2 .. c run. Three, but two at BN = 256 (128
  // accumulators).
  constexpr int NA = BN == 256 ? 2 : 3;
  uint32_t a[NA][4][4];
  const uint64_t xd0 = desc_sw128(sbase);
  RsRaw<GS, HZ> r0, r1;  // even / odd chunks' raw scales, loaded two chunks ahead
  load_raw(r0, 0);
  if (nch > 1) load_raw(r1, 1);
  mbar_wait(bars, 0);
  decode(a[0], 0, r0);
  if (nch > 2) load_raw(r0, 2);
  // Chunk c: issue its group (fragments ac), wait for group c - NA + 1 and release its stage, then decode chunk c + 1
  // into an (the fragments that group read) with rn, and load chunk c + 3's scales into rn.
  // full: c + 3 < nch is known (no bounds tests)
  auto step = [&](int c, uint32_t (&ac)[4][4], uint32_t (&an)[4][4], RsRaw<GS, HZ>& rn, auto full) {
    constexpr bool F = decltype(full)::value;
    // the stage's x descriptors: the base's plus the offset in 16-byte units (the 14-bit address field never carries)
    const uint32_t xlo = uint32_t(xd0) + uint32_t((c & (S - 1)) * (L::STAGE >> 4));
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_rs<BN, XT>(acc, ac[kk], (xd0 & ~uint64_t(0xffffffffu)) | (xlo + 2 * kk));
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(NA - 1) : "memory");
    __syncwarp();
    if (c >= NA - 1 && lane == 0) mbar_arrive(bars + 8 * (S + ((c - NA + 1) & (S - 1))));
    if (F || c + 1 < nch) {
      mbar_wait(bars + 8 * ((c + 1) & (S - 1)), ((c + 1) / S) & 1);
      decode(an, c + 1, rn);
      if (F || c + 3 < nch) load_raw(rn, c + 3);
    }
  };
  // Groups of 2 NA steps (the fragment buffers and the scale sets both come back to the same slots); the groups whose
  // steps all have a chunk 3 ahead run without bounds tests, the rest with them. Why: the compares and the branches
  // around the decode held ~8% of the loop's warp samples (ncu, H100, 4096^2 M = 64 int4, 2026-11-27); without them
  // the GEMM ran 4-8% faster at M = 64-1024 (bench/gpu_rs.py, H100: 8192^2 int4 M = 1024 215.3 -> 206.5 us).
  int c = 0;
  for (; c + 2 * NA + 2 < nch; c += 2 * NA) {
#pragma unroll
    for (int u = 0; u < 2 * NA; ++u) step(c + u, a[u % NA], a[(u + 1) % NA], u % 2 ? r0 : r1, std::true_type());
  }
  for (; c < nch; c += 2 * NA) {
#pragma unroll
    for (int u = 0; u < 2 * NA; ++u)
      if (c + u < nch) step(c + u, a[u % NA], a[(u + 1) % NA], u % 2 ? r0 : r1, std::false_type());
  }
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) asm volatile("" : "+f"(acc[i]) :: "memory");

  // acc[4 j + e]: weight row rl + 8 (e >> 1), x row 8 j + 2 q + (e & 1)
  if (gridDim.y > 1 && p.ws == nullptr) {  // split-K in a cluster: the partial goes over the first stages (every
                                           // wgmma of both warpgroups is done)
    asm volatile("bar.sync 1, %0;\n" :: "n"(kRsCons) : "memory");
    float* part = reinterpret_cast<float*>(base);
#pragma unroll
    for (int j = 0; j < BN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) part[(8 * j + 2 * q + (e & 1)) * kRsP + rl + 8 * (e >> 1)] = acc[4 * j + e];
    const auto reduce = [&](auto sp) {
      cluster_reduce_tile<XT, BN, decltype(sp)::value, kRsRows, kRsCons>(sbase, m0, n0, tid, p.M, N, p.gscale, p.bias,
                                                                         p.out);
    };
    if (gridDim.y == 2) reduce(std::integral_constant<int, 2>());
    else if (gridDim.y == 4) reduce(std::integral_constant<int, 4>());
    else reduce(std::integral_constant<int, 8>());
    return;
  }
  const float gs = p.gscale ? __ldg(p.gscale) : 1.f;
  const XT* bias = reinterpret_cast<const XT*>(p.bias);
  XT* out = reinterpret_cast<XT*>(p.out);
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int m = m0 + 8 * j + 2 * q + (e & 1), n = n0 + rl + 8 * (e >> 1);
      if (m < p.M && n < N) store_result<XT>(acc[4 * j + e], m, n, p.M, N, p.ws, p.gscale, gs, bias, out);
    }
  }
#else
  __trap();  // sm_90a only: the host never launches it elsewhere (tc_device_ok checks the device)
#endif
}

int rs_env_bn() {  // FOURBIT_RS_BN (64 / 128 / 256) fixes the x tile, for experiments; read once
  static const int env = env_choice("FOURBIT_RS_BN", {64, 128, 256});
  return env;
}

// S-CTA clusters of BN's kernels the current device holds at once (all have its threads and shared memory; the
// registers do not bind); 0 where it cannot launch them.
template <int BN> int rs_resident(int S) {
  return resident_clusters(gemm_rs_kernel<__nv_bfloat16, SK_F32, 1, false, BN, 0>, kRsThreads, RsSmem<BN>::BYTES, S);
}

struct RsPlan { int bn, mt; int64_t tiles; int S, per; bool cluster; };  // mt: M tiles of bn x rows

// With x tiles of bn rows: the split count S and 64-K chunks per split, the largest power of two that keeps the CTAs
// within one wave (one CTA an SM) with at least 8 chunks (512 K) a split. The S splits of a tile reduce inside one
// thread-block cluster (cluster_reduce_tile) where S <= 8 and every tile's cluster is resident at once, else through
// the float32 workspace and the reduce kernel. Why both (H200, 2026-11-27, CUDA graphs, int4): the cluster saves the
// round trip (4096^2 M = 256, S = 2: 27.6 -> 24.0 us; 8192^2 M = 64: 36.6 -> 33.8), but 32 clusters of 4 do not fit
// at once, and 4096^2 M = 64 took 18.8 us as 2-CTA clusters against 14.5 with 4 splits through the workspace.
RsPlan rs_plan_bn(int64_t M, int64_t N, int64_t K, int bn) {
  const int mt = int((M + bn - 1) / bn);
  RsPlan r{bn, mt, ((N + kRsRows - 1) / kRsRows) * mt, 1, 0, false};
  splitk_plan(r.tiles, K / kRsK, 8, &r.S, &r.per);
  if (r.S > 1 && r.S <= 8) {
    static std::atomic<int> fits[3][kMaxDevices][4];  // [BN 64 / 128 / 256]: clusters_fit's cache
    r.cluster = clusters_fit(fits[bn == 64 ? 0 : bn == 128 ? 1 : 2], r.S, r.tiles, [bn](int s) {
      return bn == 64 ? rs_resident<64>(s) : bn == 128 ? rs_resident<128>(s) : rs_resident<256>(s);
    });
  }
  return r;
}

// The x tile (the wgmma's N): 64 rows for M <= 64, 128 for M <= 128, above that 256 unless its tiles would split
// through the workspace (then 128). Each decoded weight then serves 256 x rows (H200, 2026-11-27, bench/gpu_rs.py,
// CUDA graphs, int4 / nf4, 128 -> 256 rows): 8192^2 M = 256 71.4 / 67.2 -> 58.8 / 55.5 us, M = 512 146.7 / 133.7 ->
// 110.0 / 101.4, M = 1024 292.4 / 280.2 -> 221.2 / 222.0; 4096^2 M = 1024 76.5 / 70.7 -> 58.1 / 53.9. At 4096^2
// M = 256 the 256-row tiles split 4 ways through the workspace: 23.4 / 22.8 against 22.4 / 21.8 with 128 rows.
RsPlan rs_plan(int64_t M, int64_t N, int64_t K) {
  if (const int env = rs_env_bn()) return rs_plan_bn(M, N, K, env);
  if (M <= 64) return rs_plan_bn(M, N, K, 64);
  if (M > 128) {
    const RsPlan r = rs_plan_bn(M, N, K, 256);
    if (r.S == 1 || r.cluster) return r;
  }
  return rs_plan_bn(M, N, K, 128);
}

template <typename XT, int SK, int GS, bool HZ, int BN, int CK>
void launch_rs_t(const LinearArgs& a, const RsParams& p, const RsPlan& r, cudaStream_t st) {
  using L = RsSmem<BN>;
  const auto fn = gemm_rs_kernel<XT, SK, GS, HZ, BN, CK>;
  static std::atomic<int> attr[kMaxDevices];
  smem_limit(attr, fn, L::BYTES);
  const CUtensorMap xmap = tma_map_2d(a.x, std::is_same<XT, __half>::value ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                                          : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
                                      a.K, a.M, a.K * 2, kRsK, BN, CU_TENSOR_MAP_SWIZZLE_128B, "linear_rs");
  const CUtensorMap qmap = tma_map_2d(a.q, CU_TENSOR_MAP_DATA_TYPE_UINT8, a.K / 2, a.N, a.K / 2, kRsK / 2, kRsRows,
                                      CU_TENSOR_MAP_SWIZZLE_NONE, "linear_rs");
  cudaLaunchAttribute at[2];  // a tile's splits: one cluster (cluster_reduce_tile)
  const cudaLaunchConfig_t cfg =
      cluster_config(dim3(unsigned(r.tiles), unsigned(r.S)), kRsThreads, L::BYTES, st, r.cluster ? r.S : 0, at);
  cudaLaunchKernelEx(&cfg, fn, p, xmap, qmap);
  check_launch("fourbit gemm_rs");
}

template <typename XT, int SK, int GS, bool HZ>
void launch_rs_bn(const LinearArgs& a, const RsParams& p, const RsPlan& r, cudaStream_t st) {
  if (r.bn == 64) launch_rs_t<XT, SK, GS, HZ, 64, 0>(a, p, r, st);
  else if (r.bn == 128) launch_rs_t<XT, SK, GS, HZ, 128, 0>(a, p, r, st);
  else launch_rs_t<XT, SK, GS, HZ, 256, 0>(a, p, r, st);
}

// Groups a 64-K chunk: 4 (G = 16), 2 (G = 32), 1 (G % 64 == 0); 0 for any other G (not taken).
int rs_gs(int64_t G) { return G == 16 ? 4 : G == 32 ? 2 : G % 64 == 0 ? 1 : 0; }

template <typename XT>
void launch_rs(const LinearArgs& a, const RsParams& p, const RsPlan& r, cudaStream_t st) {
  const bool hz = a.zeros != nullptr;
  const int gs = rs_gs(a.G);
  if (a.sk == SK_F32) {  // int4 (zeros), int4_sym / nf4 / bnb_fp4 (none); G = 32 or a multiple of 64
    const bool bits = gs == 1 && hz && a.codes == 1;  // int4 with zero points: decoded by bits at <= 128 x rows
    if (bits && r.bn == 64) launch_rs_t<XT, SK_F32, 1, true, 64, 1>(a, p, r, st);
    else if (bits && r.bn == 128) launch_rs_t<XT, SK_F32, 1, true, 128, 1>(a, p, r, st);
    else if (gs == 1 && hz) launch_rs_bn<XT, SK_F32, 1, true>(a, p, r, st);
    else if (gs == 1) launch_rs_bn<XT, SK_F32, 1, false>(a, p, r, st);
    else hz ? launch_rs_bn<XT, SK_F32, 2, true>(a, p, r, st) : launch_rs_bn<XT, SK_F32, 2, false>(a, p, r, st);
  } else if (a.sk == SK_E4M3) {  // nvfp4
    launch_rs_bn<XT, SK_E4M3, 4, false>(a, p, r, st);
  } else {  // mxfp4
    launch_rs_bn<XT, SK_E8M0, 2, false>(a, p, r, st);
  }
}

}  // namespace

bool linear_rs_takes(const LinearArgs& a) {
  if (a.qk != QK_NIB4 || a.xt == XT_F32 || a.lut == nullptr || a.M <= 0 || a.M > (int64_t(1) << 24)) return false;
  if (a.N <= 0 || a.N > (int64_t(1) << 30) || a.K <= 0 || a.K % kRsK || a.K > (int64_t(1) << 30)) return false;
  if (a.G <= 0 || a.K % a.G || a.M * a.N > (int64_t(1) << 40)) return false;
  const bool hz = a.zeros != nullptr;
  const int gs = rs_gs(a.G);
  const bool fmt = (a.sk == SK_F32 && (gs == 1 || gs == 2)) || (a.sk == SK_E4M3 && gs == 4 && !hz) ||
                   (a.sk == SK_E8M0 && gs == 2 && !hz);
  const auto al = [](const void* v) { return (reinterpret_cast<uintptr_t>(v) & 15u) == 0; };
  // a row's scales (zeros) of a chunk are read as one word (load_raw): 16-byte aligned bases keep every one aligned
  return fmt && al(a.x) && al(a.q) && al(a.scales) && al(a.zeros) && tc_device_ok();
}

int64_t linear_rs_workspace(int64_t M, int64_t N, int64_t K) {
  if (M <= 0 || N <= 0 || K < kRsK) return 0;
  const RsPlan r = rs_plan(M, N, K);
  return r.S > 1 && !r.cluster ? int64_t(r.S) * M * N : 0;
}

void linear_rs(const LinearArgs& a, uintptr_t stream) {
  if (!linear_rs_takes(a)) throw std::invalid_argument("linear_rs: unsupported shape, format, alignment or device");
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  const RsPlan r = rs_plan(a.M, a.N, a.K);
  if (!r.cluster) require_splitk_ws(a, r.S, "linear_rs");
  RsParams p{};
  p.scales = a.scales; p.zeros = a.zeros; p.gscale = a.gscale; p.lut = a.lut;
  p.bias = a.bias; p.out = a.out; p.ws = r.cluster ? nullptr : a.ws;
  p.M = int(a.M); p.N = int(a.N); p.K = int(a.K); p.G = int(a.G); p.per = r.per;
  p.mt = r.mt;
  if (rs_gs(a.G) == 1 && a.G > kRsK) divider(int(a.G / kRsK), &p.gmul, &p.gshr);
  else { p.gmul = 0; p.gshr = 0; }
  if (a.xt == XT_BF16) launch_rs<__nv_bfloat16>(a, p, r, st);
  else launch_rs<__half>(a, p, r, st);
  if (!r.cluster) reduce_splits(a, r.S, st);
}

}  // namespace fourbit_cuda
