// Where dynamic shared memory starts in a block's shared window (sm_90), with 1 byte and with 1 KB of static shared
// memory. The GEMV aligns its 32 KB table to 32 KB inside its dynamic allocation, so the allocation it needs depends
// on this base (gemv.cu, nib_smem_at). H200, 2026-11-28: static at 0x400 (the 1 KB reserved per block), dynamic at
// 0x410 and 0x800. Build and run: nvcc -arch=sm_90a -o /tmp/smem_base smem_base.cu && /tmp/smem_base
#include <cstdio>
#include <cstdint>
extern __shared__ uint8_t dyn[];
template <int S> __global__ void base_kernel(uint32_t* out) {
  __shared__ uint8_t st[S];
  if (threadIdx.x == 0) {
    st[0] = 1;
    out[0] = uint32_t(__cvta_generic_to_shared(dyn));
    out[1] = uint32_t(__cvta_generic_to_shared(st)) + st[0] - 1;
  }
}
int main() {
  uint32_t* d;
  uint32_t h[2];
  cudaMalloc(&d, 8);
  cudaFuncSetAttribute(base_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, 90 * 1024);
  cudaFuncSetAttribute(base_kernel<1024>, cudaFuncAttributeMaxDynamicSharedMemorySize, 90 * 1024);
  base_kernel<1><<<1, 32, 90 * 1024>>>(d);
  cudaMemcpy(h, d, 8, cudaMemcpyDeviceToHost);
  printf("static 1 B:    dynamic base 0x%x, static at 0x%x\n", h[0], h[1]);
  base_kernel<1024><<<1, 32, 90 * 1024>>>(d);
  cudaMemcpy(h, d, 8, cudaMemcpyDeviceToHost);
  printf("static 1024 B: dynamic base 0x%x, static at 0x%x\n", h[0], h[1]);
  return 0;
}
