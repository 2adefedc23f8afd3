// Nibble packing: codes[2i] -> low nibble of byte i, codes[2i+1] -> high nibble (OCP / torch order).
// Plain byte loops (auto-vectorized at -O3), threaded in 64 KiB chunks.
#include "cpu/pack.h"
#include "cpu/threads.h"

namespace fourbit {

void pack_nibbles(const uint8_t* codes, uint8_t* out, int64_t nbytes) {
  parallel_for(nbytes, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = uint8_t((codes[2 * i] & 15) | (codes[2 * i + 1] << 4));
  });
}

void unpack_nibbles(const uint8_t* packed, uint8_t* out, int64_t nbytes) {
  parallel_for(nbytes, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) { out[2 * i] = packed[i] & 15; out[2 * i + 1] = packed[i] >> 4; }
  });
}

}  // namespace fourbit
