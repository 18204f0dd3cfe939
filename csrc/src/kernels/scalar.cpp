// Scalar reference kernels: plain loops in index order. Every SIMD level is
// tested against these, so they favour clarity over speed.
#include <cstring>

#include "vpr/kernels.hpp"

namespace vpr {
namespace {

float dot_f32_one(const float* a, const float* b, std::size_t d) {
  float acc = 0.0f;
  for (std::size_t k = 0; k < d; ++k) acc += a[k] * b[k];
  return acc;
}

std::int32_t dot_i8_one(const std::int8_t* a, const std::int8_t* b, std::size_t d) {
  std::int32_t acc = 0;
  for (std::size_t k = 0; k < d; ++k) acc += std::int32_t{a[k]} * std::int32_t{b[k]};
  return acc;
}

void dot_f32(const float* q, const float* db, std::size_t n, std::size_t d, float* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = dot_f32_one(q, db + i * d, d);
}

void dot_f16(const float* q, const std::uint16_t* db, std::size_t n, std::size_t d, float* out) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint16_t* row = db + i * d;
    float acc = 0.0f;
    for (std::size_t k = 0; k < d; ++k) acc += q[k] * half_to_float(row[k]);
    out[i] = acc;
  }
}

void f16_to_f32(const std::uint16_t* src, std::size_t count, float* dst) {
  for (std::size_t i = 0; i < count; ++i) dst[i] = half_to_float(src[i]);
}

void dot_i8(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
            std::int32_t* out) {
  for (std::size_t i = 0; i < n; ++i) out[i] = dot_i8_one(q, db + i * d, d);
}

void hamming(const std::uint8_t* q, const std::uint8_t* db, std::size_t n, std::size_t nbytes,
             std::uint32_t* out) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* row = db + i * nbytes;
    std::uint32_t acc = 0;
    std::size_t k = 0;
    // 8 bytes at a time via memcpy (no alignment or aliasing assumptions).
    for (; k + 8 <= nbytes; k += 8) {
      std::uint64_t a, b;
      std::memcpy(&a, q + k, 8);
      std::memcpy(&b, row + k, 8);
      acc += static_cast<std::uint32_t>(__builtin_popcountll(a ^ b));
    }
    for (; k < nbytes; ++k) acc += static_cast<std::uint32_t>(__builtin_popcount(q[k] ^ row[k]));
    out[i] = acc;
  }
}

void dot_f32_batch(const float* q, std::size_t nq, const float* db, std::size_t n, std::size_t d,
                   float* out) {
  for (std::size_t j = 0; j < nq; ++j) dot_f32(q + j * d, db, n, d, out + j * n);
}

void dot_i8_batch(const std::int8_t* q, std::size_t nq, const std::int8_t* db, std::size_t n,
                  std::size_t d, std::int32_t* out) {
  for (std::size_t j = 0; j < nq; ++j) dot_i8(q + j * d, db, n, d, out + j * n);
}

}  // namespace

// Block layout (vpr/pq.hpp): for sub-quantizer j, 16 bytes; byte i holds the code of
// place i in its low nibble and that of place i + 16 in its high nibble.
void pq4_scan_scalar(const std::uint8_t* lut, std::size_t m, const std::uint8_t* codes,
                     std::size_t nblocks, std::uint16_t* out) {
  for (std::size_t b = 0; b < nblocks; ++b) {
    const std::uint8_t* block = codes + b * m * 16;
    for (std::size_t i = 0; i < 32; ++i) {
      unsigned acc = 0;
      for (std::size_t j = 0; j < m; ++j) {
        const std::uint8_t byte = block[j * 16 + (i & 15)];
        const unsigned code = i < 16 ? (byte & 15u) : (byte >> 4);
        acc += lut[j * 16 + code];
      }
      out[b * 32 + i] = static_cast<std::uint16_t>(acc);
    }
  }
}

const KernelTable& scalar_kernels() {
  static const KernelTable table{dot_f32,       dot_f16,      dot_i8,     hamming,
                                 dot_f32_batch, dot_i8_batch, f16_to_f32, pq4_scan_scalar};
  return table;
}

}  // namespace vpr
