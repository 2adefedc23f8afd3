// wgmma m64nNk16 with float32 accumulators d[N / 2] (sm_90a only), for N = 8, 16 (bench/probes/wgmma_rate.cu), 32, 64,
// 128, 256 (the x rows of a tile):
// scale-d = 1 (d += A B), scale-a = scale-b = 1, both operands K-major.
//   wgmma_ss: A and B in shared memory (matrix descriptors; csrc/cuda/gemm_tc.cu);
//   wgmma_rs: A in registers (a[4]: the m16n8k16 A fragment of the warp's 16 rows, as mma.sync's), B in shared
//             memory (csrc/cuda/gemm_rs.cu).
//   wgmma_rs_e4m3: m64nNk32, E4M3 x E4M3 (N = 64, 128; csrc/cuda/gemm_w4a8.cu): A in registers (a[4]: the m16n8k32
//             8-bit A fragment, 4 bytes of K a register), B in shared memory; scale_d = 0 writes d = A B (the first
//             step of a promotion window).
// One macro writes each N's bf16 and f16 versions; the PTX register list has N / 2 entries, so it is spelled out
// once per size below.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace fourbit_cuda {

template <int N, typename XT> __device__ __forceinline__ void wgmma_ss(float* d, uint64_t a, uint64_t b);
template <int N, typename XT> __device__ __forceinline__ void wgmma_rs(float* d, const uint32_t* a, uint64_t b);
template <int N> __device__ __forceinline__ void wgmma_rs_e4m3(float* d, const uint32_t* a, uint64_t b, int scale_d);

// accumulator operands d[o .. o + 15]
#define FOURBIT_D4(o) "+f"(d[o]), "+f"(d[o + 1]), "+f"(d[o + 2]), "+f"(d[o + 3])
#define FOURBIT_D16(o) FOURBIT_D4(o), FOURBIT_D4(o + 4), FOURBIT_D4(o + 8), FOURBIT_D4(o + 12)
#define FOURBIT_D8(o) FOURBIT_D4(o), FOURBIT_D4(o + 4)
// PTX register lists %0 .. %(N / 2 - 1)
#define FOURBIT_R4 "%0, %1, %2, %3"
#define FOURBIT_R8 FOURBIT_R4 ", %4, %5, %6, %7"
#define FOURBIT_R16 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
#define FOURBIT_R32 FOURBIT_R16 ", %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define FOURBIT_R64_HI ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47" \
  ", %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define FOURBIT_R128_HI ", %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79" \
  ", %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95" \
  ", %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111" \
  ", %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
// N, PTX type, C++ type, register list, operand numbers of a, b and the predicate source, accumulator operands
#define FOURBIT_WGMMA_SS(N, TY, XT, REGS, A, B, P, ...)                                                          \
  template <> __device__ __forceinline__ void wgmma_ss<N, XT>(float* d, uint64_t a, uint64_t b) {                 \
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %" #P ", 0;\n wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." \
                 TY "." TY " {" REGS "}, %" #A ", %" #B ", p, 1, 1, 0, 0;\n}\n"                                   \
                 : __VA_ARGS__ : "l"(a), "l"(b), "r"(1));                                                          \
  }
#define FOURBIT_WGMMA_SS_BOTH(N, REGS, A, B, P, ...)              \
  FOURBIT_WGMMA_SS(N, "bf16", __nv_bfloat16, REGS, A, B, P, __VA_ARGS__) \
  FOURBIT_WGMMA_SS(N, "f16", __half, REGS, A, B, P, __VA_ARGS__)
// The same with A from registers: operands A0 .. A3 are a[0..3], then b, then the predicate source (no trans-a).
#define FOURBIT_WGMMA_RS(N, TY, XT, REGS, A0, A1, A2, A3, B, P, ...)                                             \
  template <> __device__ __forceinline__ void wgmma_rs<N, XT>(float* d, const uint32_t* a, uint64_t b) {           \
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %" #P ", 0;\n wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." \
                 TY "." TY " {" REGS "}, {%" #A0 ", %" #A1 ", %" #A2 ", %" #A3 "}, %" #B ", p, 1, 1, 0;\n}\n"      \
                 : __VA_ARGS__ : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));                        \
  }
// Both kinds, both dtypes, for one N: ss operand numbers A, B, P; rs operand numbers A0 .. A3, RB, RP.
#define FOURBIT_WGMMA_BOTH(N, REGS, A, B, P, A0, A1, A2, A3, RB, RP, ...)                \
  FOURBIT_WGMMA_SS_BOTH(N, REGS, A, B, P, __VA_ARGS__)                                    \
  FOURBIT_WGMMA_RS(N, "bf16", __nv_bfloat16, REGS, A0, A1, A2, A3, RB, RP, __VA_ARGS__) \
  FOURBIT_WGMMA_RS(N, "f16", __half, REGS, A0, A1, A2, A3, RB, RP, __VA_ARGS__)

FOURBIT_WGMMA_BOTH(8, FOURBIT_R4, 4, 5, 6, 4, 5, 6, 7, 8, 9, FOURBIT_D4(0))
FOURBIT_WGMMA_BOTH(16, FOURBIT_R8, 8, 9, 10, 8, 9, 10, 11, 12, 13, FOURBIT_D8(0))
FOURBIT_WGMMA_BOTH(32, FOURBIT_R16, 16, 17, 18, 16, 17, 18, 19, 20, 21, FOURBIT_D16(0))
FOURBIT_WGMMA_BOTH(64, FOURBIT_R32, 32, 33, 34, 32, 33, 34, 35, 36, 37, FOURBIT_D16(0), FOURBIT_D16(16))
FOURBIT_WGMMA_BOTH(128, FOURBIT_R32 FOURBIT_R64_HI, 64, 65, 66, 64, 65, 66, 67, 68, 69, FOURBIT_D16(0), FOURBIT_D16(16),
                   FOURBIT_D16(32), FOURBIT_D16(48))
FOURBIT_WGMMA_BOTH(256, FOURBIT_R32 FOURBIT_R64_HI FOURBIT_R128_HI, 128, 129, 130, 128, 129, 130, 131, 132, 133,
                   FOURBIT_D16(0), FOURBIT_D16(16), FOURBIT_D16(32), FOURBIT_D16(48), FOURBIT_D16(64), FOURBIT_D16(80),
                   FOURBIT_D16(96), FOURBIT_D16(112))

// The E4M3 register-A form: operands A0 .. A3, b, then scale-d's source (FP8 takes no transpose immediates).
#define FOURBIT_WGMMA_RS_E4M3(N, REGS, A0, A1, A2, A3, B, P, ...)                                                   \
  template <> __device__ __forceinline__ void wgmma_rs_e4m3<N>(float* d, const uint32_t* a, uint64_t b, int scale_d) { \
    asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %" #P ", 0;\n wgmma.mma_async.sync.aligned.m64n" #N              \
                 "k32.f32.e4m3.e4m3 {" REGS "}, {%" #A0 ", %" #A1 ", %" #A2 ", %" #A3 "}, %" #B ", p, 1, 1;\n}\n"        \
                 : __VA_ARGS__ : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(scale_d));                 \
  }
FOURBIT_WGMMA_RS_E4M3(64, FOURBIT_R32, 32, 33, 34, 35, 36, 37, FOURBIT_D16(0), FOURBIT_D16(16))
FOURBIT_WGMMA_RS_E4M3(128, FOURBIT_R32 FOURBIT_R64_HI, 64, 65, 66, 67, 68, 69, FOURBIT_D16(0), FOURBIT_D16(16),
                      FOURBIT_D16(32), FOURBIT_D16(48))

#undef FOURBIT_WGMMA_RS_E4M3
#undef FOURBIT_WGMMA_BOTH
#undef FOURBIT_WGMMA_RS
#undef FOURBIT_WGMMA_SS_BOTH
#undef FOURBIT_WGMMA_SS
#undef FOURBIT_R128_HI
#undef FOURBIT_R64_HI
#undef FOURBIT_R32
#undef FOURBIT_R16
#undef FOURBIT_R8
#undef FOURBIT_R4
#undef FOURBIT_D16
#undef FOURBIT_D8
#undef FOURBIT_D4

}  // namespace fourbit_cuda
