// Nibble pack/unpack (pack.cpp).
#pragma once
#include <cstdint>

namespace fourbit {
// out[i] = codes[2i] & 15 | codes[2i+1] << 4 for i < nbytes.
void pack_nibbles(const uint8_t* codes, uint8_t* out, int64_t nbytes);
// out[2i] = packed[i] & 15, out[2i+1] = packed[i] >> 4 for i < nbytes.
void unpack_nibbles(const uint8_t* packed, uint8_t* out, int64_t nbytes);
}  // namespace fourbit
