// ISA-generic decode / dequantize / GEMV / GEMM kernels, written once against the `Simd` wrapper (simd.h) and
// compiled three times (AVX-512, AVX2+FMA, scalar) by kernels.cpp inside `#pragma GCC target` regions.
// No include guard on purpose. Uses only raw pointers and local helpers (no std inline templates), so no
// wide-ISA code can leak into other translation units through shared COMDAT symbols.

// Dequantize row n, columns [k0, k0+len), into out (f32), group by group, bit-exact with the contract.
static void decode_seg(const QW& w, int64_t n, int64_t k0, int64_t len, float* out) {
  constexpr int W = Simd::W;
  const int64_t G = w.G, end = k0 + len;
  Simd::Lut base;
  if (w.kind == QKind::NIB4) base = Simd::lut(w.lut);
  const uint8_t* row4 = w.q + n * (w.K / 2);
  for (int64_t j = k0 / G; j * G < end; ++j) {
    int64_t a = j * G > k0 ? j * G : k0, b = (j + 1) * G < end ? (j + 1) * G : end, k = a;
    GroupParams p = group_params(w, n, j);
    if (w.kind == QKind::NIB4) {
      Simd::Lut l = Simd::lut_apply(base, p.z, p.s, p.g, p.hz, p.hg);
      if ((k & 1) == 0)
        for (; k + W <= b; k += W) Simd::store(out + (k - k0), Simd::dec4(row4, k, l));
    } else {
      typename Simd::V vz = Simd::set1(p.z), vs = Simd::set1(p.s), vg = Simd::set1(p.g);
      for (; k + W <= b; k += W) {
        typename Simd::V c = w.kind == QKind::S8 ? Simd::dec_s8(reinterpret_cast<const int8_t*>(w.q) + n * w.K + k)
                                                 : Simd::dec_u8(w.q + n * w.K + k);
        if (p.hz) c = Simd::sub(c, vz);
        c = Simd::mul(c, vs);
        if (p.hg) c = Simd::mul(c, vg);
        Simd::store(out + (k - k0), c);
      }
    }
    for (; k < b; ++k) out[k - k0] = decode1(w, p, n, k);
  }
}

// Dequantize rows [n0, n1) into out (dtype t, [N, K]); tmp holds K floats for the bf16/fp16 conversion.
static void dequant_rows(const QW& w, int64_t n0, int64_t n1, DType t, void* out, float* tmp) {
  constexpr int W = Simd::W;
  for (int64_t n = n0; n < n1; ++n) {
    if (t == DType::F32) { decode_seg(w, n, 0, w.K, static_cast<float*>(out) + n * w.K); continue; }
    decode_seg(w, n, 0, w.K, tmp);
    uint16_t* d = static_cast<uint16_t*>(out) + n * w.K;
    int64_t k = 0;
    if (t == DType::BF16) {
      for (; k + W <= w.K; k += W) Simd::store_bf16(d + k, Simd::load(tmp + k));
      for (; k < w.K; ++k) d[k] = f32_to_bf16(tmp[k]);
    } else {
      for (; k + W <= w.K; k += W) Simd::store_f16(d + k, Simd::load(tmp + k));
      for (; k < w.K; ++k) d[k] = f32_to_f16(tmp[k]);
    }
  }
}

// GEMV block: y[m0+m, n+r] = sum_k x[m0+m, k] * v[n+r, k] for m < MB, r < R. Weights are decoded into registers
// (one LUT permute per W codes) and reused across the MB rows of x, which stay in L1.
template <int MB, int R>
static FB_INL void gemv_block(const QW& w, const float* x, int64_t m0, int64_t n, float* y) {
  constexpr int W = Simd::W;
  using V = typename Simd::V;
  const int64_t K = w.K, G = w.G, N = w.N;
  V acc[MB][R];
  float tail[MB][R];
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < R; ++r) { acc[m][r] = Simd::zero(); tail[m][r] = 0.0f; }
  Simd::Lut base;
  if (w.kind == QKind::NIB4) base = Simd::lut(w.lut);
  const float* xm = x + m0 * K;
  for (int64_t j = 0; j < w.ng(); ++j) {
    const int64_t a = j * G, b = a + G;
    int64_t k = a;
    GroupParams p[R];
    for (int r = 0; r < R; ++r) p[r] = group_params(w, n + r, j);
    if (w.kind == QKind::NIB4) {
      Simd::Lut l[R];
      for (int r = 0; r < R; ++r) l[r] = Simd::lut_apply(base, p[r].z, p[r].s, p[r].g, p[r].hz, p[r].hg);
      if ((a & 1) == 0)
        for (; k + W <= b; k += W) {
          V v[R];
          for (int r = 0; r < R; ++r) v[r] = Simd::dec4(w.q + (n + r) * (K / 2), k, l[r]);
          for (int m = 0; m < MB; ++m) {
            V xv = Simd::load(xm + m * K + k);
            for (int r = 0; r < R; ++r) acc[m][r] = Simd::fma(xv, v[r], acc[m][r]);
          }
        }
    } else {
      for (; k + W <= b; k += W) {
        V v[R];
        for (int r = 0; r < R; ++r) {
          V c = w.kind == QKind::S8 ? Simd::dec_s8(reinterpret_cast<const int8_t*>(w.q) + (n + r) * K + k)
                                    : Simd::dec_u8(w.q + (n + r) * K + k);
          if (p[r].hz) c = Simd::sub(c, Simd::set1(p[r].z));
          c = Simd::mul(c, Simd::set1(p[r].s));
          v[r] = p[r].hg ? Simd::mul(c, Simd::set1(p[r].g)) : c;
        }
        for (int m = 0; m < MB; ++m) {
          V xv = Simd::load(xm + m * K + k);
          for (int r = 0; r < R; ++r) acc[m][r] = Simd::fma(xv, v[r], acc[m][r]);
        }
      }
    }
    for (; k < b; ++k)
      for (int r = 0; r < R; ++r) {
        float v = decode1(w, p[r], n + r, k);
        for (int m = 0; m < MB; ++m) tail[m][r] += xm[m * K + k] * v;
      }
  }
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < R; ++r) y[(m0 + m) * N + n + r] = Simd::hsum(acc[m][r]) + tail[m][r];
}

// GEMV over rows [n0, n1) for MB rows of x starting at m0: R=4 rows at a time (R=2 when MB > 4), then singles.
template <int MB>
static void gemv_rows_mb(const QW& w, const float* x, int64_t m0, int64_t n0, int64_t n1, float* y) {
  constexpr int R = MB <= 4 ? 4 : 2;
  int64_t n = n0;
  for (; n + R <= n1; n += R) gemv_block<MB, R>(w, x, m0, n, y);
  for (; n < n1; ++n) gemv_block<MB, 1>(w, x, m0, n, y);
}

// Small-M path: y[M, N] (f32) for rows [n0, n1), x is f32 [M, K]; M is processed in blocks of up to 8.
static void gemv_rows(const QW& w, const float* x, int64_t M, int64_t n0, int64_t n1, float* y) {
  for (int64_t m0 = 0; m0 < M; m0 += 8) {
    switch (M - m0 >= 8 ? 8 : M - m0) {
      case 8: gemv_rows_mb<8>(w, x, m0, n0, n1, y); break;
      case 7: gemv_rows_mb<7>(w, x, m0, n0, n1, y); break;
      case 6: gemv_rows_mb<6>(w, x, m0, n0, n1, y); break;
      case 5: gemv_rows_mb<5>(w, x, m0, n0, n1, y); break;
      case 4: gemv_rows_mb<4>(w, x, m0, n0, n1, y); break;
      case 3: gemv_rows_mb<3>(w, x, m0, n0, n1, y); break;
      case 2: gemv_rows_mb<2>(w, x, m0, n0, n1, y); break;
      default: gemv_rows_mb<1>(w, x, m0, n0, n1, y); break;
    }
  }
}

// GEMM tile shape: NR output columns (two vectors), MR rows of x, KB-long K chunks (KB*NR*4 B = 32 KB on AVX-512).
constexpr int kNR = 2 * Simd::W, kMR = 6, kKB = 256;

// Micro-kernel: tmp[MR][NR] = x[0:MR, 0:kl] @ wt[0:kl, 0:NR], wt is the dequantized tile stored k-major.
template <int MR>
static FB_INL void gemm_micro(const float* x, int64_t ldx, const float* wt, int64_t kl, float* tmp) {
  constexpr int W = Simd::W;
  using V = typename Simd::V;
  V acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = Simd::zero();
  for (int64_t k = 0; k < kl; ++k) {
    V w0 = Simd::load(wt + k * kNR), w1 = Simd::load(wt + k * kNR + W);
    for (int i = 0; i < MR; ++i) {
      V xb = Simd::set1(x[i * ldx + k]);
      acc[i][0] = Simd::fma(xb, w0, acc[i][0]);
      acc[i][1] = Simd::fma(xb, w1, acc[i][1]);
    }
  }
  for (int i = 0; i < MR; ++i) { Simd::store(tmp + i * kNR, acc[i][0]); Simd::store(tmp + i * kNR + W, acc[i][1]); }
}

// Large-M path over output-column tiles [t0, t1) (tile = kNR columns): for each K chunk, dequantize the W tile once
// into a k-major buffer, then run the register-blocked micro-kernel over all rows of x; y (f32 [M, N]) accumulates.
static void gemm_tiles(const QW& w, const float* x, int64_t M, int64_t t0, int64_t t1, float* y) {
  alignas(64) float wt[kKB * kNR];
  alignas(64) float row[kKB];
  alignas(64) float tmp[kMR * kNR];
  const int64_t K = w.K, N = w.N;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t n0 = t * kNR, nn = N - n0 < kNR ? N - n0 : kNR;
    for (int64_t kc = 0; kc < K; kc += kKB) {
      const int64_t kl = K - kc < kKB ? K - kc : kKB;
      for (int64_t r = 0; r < kNR; ++r) {
        if (r < nn) decode_seg(w, n0 + r, kc, kl, row);
        for (int64_t k = 0; k < kl; ++k) wt[k * kNR + r] = r < nn ? row[k] : 0.0f;
      }
      for (int64_t m0 = 0; m0 < M; m0 += kMR) {
        const int64_t mr = M - m0 < kMR ? M - m0 : kMR;
        const float* xp = x + m0 * K + kc;
        switch (mr) {
          case 6: gemm_micro<6>(xp, K, wt, kl, tmp); break;
          case 5: gemm_micro<5>(xp, K, wt, kl, tmp); break;
          case 4: gemm_micro<4>(xp, K, wt, kl, tmp); break;
          case 3: gemm_micro<3>(xp, K, wt, kl, tmp); break;
          case 2: gemm_micro<2>(xp, K, wt, kl, tmp); break;
          default: gemm_micro<1>(xp, K, wt, kl, tmp); break;
        }
        for (int64_t i = 0; i < mr; ++i) {
          float* yr = y + (m0 + i) * N + n0;
          if (kc == 0) for (int64_t r = 0; r < nn; ++r) yr[r] = tmp[i * kNR + r];
          else for (int64_t r = 0; r < nn; ++r) yr[r] += tmp[i * kNR + r];
        }
      }
    }
  }
}
