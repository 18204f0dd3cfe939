// Hamming distances of short binary codes (8, 16, 32 or 64 bytes, the common
// descriptor sizes), unrolled at compile time over 64-bit words: one popcount
// per word and no horizontal reduction per row. Internal linkage, as in
// tiling.hpp: each kernel file compiles this with its own instruction flags.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vpr {
namespace {

template <std::size_t W>
void hamming_words(const std::uint8_t* q, const std::uint8_t* db, std::size_t n,
                   std::uint32_t* out) {
  std::uint64_t qw[W];
  std::memcpy(qw, q, sizeof qw);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* row = db + i * 8 * W;
    std::uint64_t acc = 0;
    for (std::size_t w = 0; w < W; ++w) {
      // One 8-byte load per word. Copying the row into a local array first made GCC 12
      // bounce it through the stack (two 16-byte stores, four 8-byte reloads per row):
      // 2.3 ns per 32-byte row instead of about 1.
      std::uint64_t word;
      std::memcpy(&word, row + 8 * w, 8);
      acc += static_cast<std::uint64_t>(__builtin_popcountll(qw[w] ^ word));
    }
    out[i] = static_cast<std::uint32_t>(acc);
  }
}

// Fills out and returns true when nbytes is one of the unrolled sizes.
inline bool hamming_short_codes(const std::uint8_t* q, const std::uint8_t* db, std::size_t n,
                                std::size_t nbytes, std::uint32_t* out) {
  switch (nbytes) {
    case 8:
      hamming_words<1>(q, db, n, out);
      return true;
    case 16:
      hamming_words<2>(q, db, n, out);
      return true;
    case 32:
      hamming_words<4>(q, db, n, out);
      return true;
    case 64:
      hamming_words<8>(q, db, n, out);
      return true;
    default:
      return false;
  }
}

}  // namespace
}  // namespace vpr
