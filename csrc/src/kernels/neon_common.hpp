// Kernels of the baseline NEON level (armv8-a) that the dotprod level reuses:
// only its int8 kernels change. Defined in neon.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vpr {
namespace neon {

// Rows in address order (Sequential, SequentialPrefetch) and row tiles (Interleaved).
void dot_f32(const float* q, const float* db, std::size_t n, std::size_t d, float* out);
void dot_f32_prefetch(const float* q, const float* db, std::size_t n, std::size_t d, float* out);
void dot_f32_interleaved(const float* q, const float* db, std::size_t n, std::size_t d, float* out);
void dot_f16(const float* q, const std::uint16_t* db, std::size_t n, std::size_t d, float* out);
void dot_f16_prefetch(const float* q, const std::uint16_t* db, std::size_t n, std::size_t d,
                      float* out);
void dot_f16_interleaved(const float* q, const std::uint16_t* db, std::size_t n, std::size_t d,
                         float* out);
void hamming(const std::uint8_t* q, const std::uint8_t* db, std::size_t n, std::size_t nbytes,
             std::uint32_t* out);
void dot_f32_batch(const float* q, std::size_t nq, const float* db, std::size_t n, std::size_t d,
                   float* out);
void f16_to_f32(const std::uint16_t* src, std::size_t count, float* dst);

}  // namespace neon
}  // namespace vpr
