// How many thread-block clusters of C CTAs (one 512-thread CTA an SM, the small-M GEMM's shared memory) the GPU runs
// at once (cudaOccupancyMaxActiveClusters): whether its split-K could be summed inside a cluster in one wave.
// Usage (GPU machine): nvcc -arch=sm_90a -o /tmp/cluster_fit bench/probes/cluster_fit.cu && /tmp/cluster_fit
// [THREADS SMEM_KB ...] (pairs; default 512 200: the 16-warp block)
#include <cstdio>
#include <cuda_runtime.h>

__global__ void k(float* p) { if (p) p[threadIdx.x] = 0.f; }

#include <cstdlib>
int main(int argc, char** argv) {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024);
  cudaFuncSetAttribute(k, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
  for (int a = 1; a + 1 < (argc > 1 ? argc : 3); a += 2) {
  const int threads = argc > 1 ? atoi(argv[a]) : 512, smem = (argc > 1 ? atoi(argv[a + 1]) : 200) * 1024;
  for (int c : {1, 2, 4, 8, 16}) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(16, c * 8);
    cfg.blockDim = dim3(threads);
    cfg.dynamicSmemBytes = smem;
    cudaLaunchAttribute at;
    at.id = cudaLaunchAttributeClusterDimension;
    at.val.clusterDim.x = 1; at.val.clusterDim.y = c; at.val.clusterDim.z = 1;
    cfg.attrs = &at; cfg.numAttrs = 1;
    int n = -1;
    cudaError_t e = cudaOccupancyMaxActiveClusters(&n, k, &cfg);
    printf("SMs %d, cluster of %2d CTAs (%d threads, %d KB smem): %d clusters at once (%s)\n", sms, c, threads,
           smem / 1024, n, cudaGetErrorString(e));
  }
  }
  return 0;
}
