// Per-format group quantizers (bit-exact with the fourbit rules), written as plain loops that GCC auto-vectorizes;
// quantize.cpp compiles this file once per ISA inside `#pragma GCC target` regions. No include guard on purpose.

// Max |x| of a group as an f32 bit pattern; >= 0x7f800000 means the group holds a NaN or an Inf.
static inline uint32_t group_absmax_bits(const float* x, int64_t n) {
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) { uint32_t u = f2u(x[i]) & 0x7fffffffu; m = u > m ? u : m; }
  return m;
}
// Clamp for floats without NaN concerns (inputs are finite here).
static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Quantize one group of G finite-or-not f32 values into codes (4-bit codes or 8-bit bytes), scale slot, zero slot.
static void quant_group(const QSpec& P, const float* x, int64_t G, uint8_t* codes, int64_t si) {
  const uint32_t mb = group_absmax_bits(x, G);
  const bool bad = mb >= 0x7f800000u;
  const float amax = u2f(mb), qnan = u2f(0x7fc00000u);
  float* sf = static_cast<float*>(P.scales);
  uint8_t* sb = static_cast<uint8_t*>(P.scales);
  switch (P.fmt) {
    case Fmt::INT4_SYM: case Fmt::INT8_SYM: {
      const bool i4 = P.fmt == Fmt::INT4_SYM;
      const float lo = i4 ? -8.0f : -127.0f, hi = i4 ? 7.0f : 127.0f, off = i4 ? 8.0f : 0.0f;
      if (bad) { sf[si] = qnan; for (int64_t i = 0; i < G; ++i) codes[i] = i4 ? 8 : 0; return; }
      float s = amax / (i4 ? 7.0f : 127.0f);
      if (s == 0.0f) s = 1.0f;
      sf[si] = s;
      // clamp before rounding: identical result (integer bounds) and keeps rne_small in range
      for (int64_t i = 0; i < G; ++i) codes[i] = uint8_t(int32_t(rne_small(clampf(x[i] / s, lo, hi)) + off));
      return;
    }
    case Fmt::INT4_ASYM: case Fmt::INT8_ASYM: {
      const bool i4 = P.fmt == Fmt::INT4_ASYM;
      const float top = i4 ? 15.0f : 255.0f;
      if (bad) { sf[si] = qnan; P.zeros[si] = 0; for (int64_t i = 0; i < G; ++i) codes[i] = 0; return; }
      float mn = 0.0f, mx = 0.0f;
      for (int64_t i = 0; i < G; ++i) { mn = x[i] < mn ? x[i] : mn; mx = x[i] > mx ? x[i] : mx; }
      float s = (mx - mn) / top;
      if (s == 0.0f) s = 1.0f;
      const float z = rne_small(clampf(-mn / s, 0.0f, top));
      sf[si] = s; P.zeros[si] = uint8_t(z);
      for (int64_t i = 0; i < G; ++i)
        codes[i] = uint8_t(int32_t(clampf(rne_small(clampf(x[i] / s, -top - 1.0f, 2.0f * top + 1.0f)) + z, 0.0f, top)));
      return;
    }
    case Fmt::NF4: case Fmt::BNB_FP4: {
      if (bad) { sf[si] = qnan; for (int64_t i = 0; i < G; ++i) codes[i] = P.zero_code; return; }
      sf[si] = amax;
      const float inv = 1.0f / (amax > 1e-38f ? amax : 1e-38f);
      for (int64_t i = 0; i < G; ++i) {
        const float t = clampf(x[i] * inv, -1.0f, 1.0f);
        int c = 0;
        for (int b = 0; b < 15; ++b) c += P.bounds[b] < t;  // number of bounds strictly below t
        codes[i] = P.sorted_codes[c];
      }
      return;
    }
    case Fmt::NVFP4: {
      if (bad) { sb[si] = 0x7f; for (int64_t i = 0; i < G; ++i) codes[i] = 0; return; }
      const float g = P.gscale, sfv = amax / (6.0f * g);
      uint8_t e = f32_to_e4m3_pos(sfv);
      if (e == 0) e = 0x38;
      sb[si] = e;
      const float d = e4m3_to_f32(e) * g;
      // d = 0 (s * g underflowed): a zero x keeps v = x (formats/nvfp4.py), not 0 / 0's NaN
      for (int64_t i = 0; i < G; ++i) codes[i] = e2m1_encode(x[i] == 0.f ? x[i] : x[i] / d);
      return;
    }
    case Fmt::MXFP4_FLOOR: case Fmt::MXFP4_RCEIL: {
      if (bad) { sb[si] = 0xff; for (int64_t i = 0; i < G; ++i) codes[i] = 0; return; }
      int e;
      if (P.fmt == Fmt::MXFP4_FLOOR) {
        int ex; std::frexp(amax, &ex);           // amax = m * 2^ex, m in [0.5, 1): floor(log2) = ex - 1
        e = amax == 0.0f ? -127 : ex - 1 - 2;
      } else {
        const float t = amax / 6.0f;
        int ex; float m = std::frexp(t, &ex);    // ceil(log2 t) = ex - 1 for an exact power of two, else ex
        e = t == 0.0f ? -127 : (m == 0.5f ? ex - 1 : ex);
      }
      e = e < -127 ? -127 : (e > 127 ? 127 : e);
      sb[si] = uint8_t(e + 127);
      // ldexp(x, -e) as one multiply by the exact power of two 2^-e (representable for |e| <= 127, 2^-127 being
      // an f32 subnormal); a single correctly rounded product equals ldexp, also when the result is subnormal.
      const float p = std::ldexp(1.0f, -e);
      for (int64_t i = 0; i < G; ++i) codes[i] = e2m1_encode(x[i] * p);
      return;
    }
  }
}

// Quantize rows [n0, n1); buf holds K floats (the row converted to f32), cbuf K codes.
static void quant_rows(const QSpec& P, int64_t n0, int64_t n1, float* buf, uint8_t* cbuf) {
  const int64_t K = P.K, G = P.G, ng = K / G;
  for (int64_t n = n0; n < n1; ++n) {
    load_to_f32(P.dt, static_cast<const char*>(P.w) + n * K * P.esize, buf, K);
    for (int64_t j = 0; j < ng; ++j) quant_group(P, buf + j * G, G, cbuf + j * G, n * ng + j);
    if (P.fmt == Fmt::INT8_SYM || P.fmt == Fmt::INT8_ASYM) {
      std::memcpy(P.q + n * K, cbuf, size_t(K));
    } else {
      uint8_t* d = P.q + n * (K / 2);
      for (int64_t i = 0; i < K / 2; ++i) d[i] = uint8_t((cbuf[2 * i] & 15) | (cbuf[2 * i + 1] << 4));
    }
  }
}

// Max |x| over the finite elements of rows [n0, n1) (nvfp4 global amax).
static float finite_absmax_rows(const QSpec& P, int64_t n0, int64_t n1, float* buf) {
  uint32_t m = 0;
  for (int64_t n = n0; n < n1; ++n) {
    load_to_f32(P.dt, static_cast<const char*>(P.w) + n * P.K * P.esize, buf, P.K);
    for (int64_t i = 0; i < P.K; ++i) {
      uint32_t u = f2u(buf[i]) & 0x7fffffffu;
      u = u >= 0x7f800000u ? 0u : u;
      m = u > m ? u : m;
    }
  }
  return u2f(m);
}
