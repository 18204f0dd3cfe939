// Distance kernels, one table per SIMD level. Every level must give the same
// results as the scalar reference: exactly for the integer kernels, within
// float rounding (summation order) for the float ones.
#pragma once

#include <cstddef>
#include <cstdint>

#include "vpr/simd.hpp"

namespace vpr {

struct KernelTable {
  // out[i] = <q, db[i]> for n rows of dimension d (row-major, contiguous).
  void (*dot_f32)(const float* q, const float* db, std::size_t n, std::size_t d, float* out);
  // Database in IEEE half precision (raw bits), query in float32.
  void (*dot_f16)(const float* q, const std::uint16_t* db, std::size_t n, std::size_t d,
                  float* out);
  // Integer dot products of int8 vectors (values in [-127, 127]).
  void (*dot_i8)(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
                 std::int32_t* out);
  // Hamming distances between packed bit vectors of nbytes bytes.
  void (*hamming)(const std::uint8_t* q, const std::uint8_t* db, std::size_t n, std::size_t nbytes,
                  std::uint32_t* out);
  // Batched float32: out[j * n + i] = <q[j], db[i]> for nq queries. Tiled so each
  // database row is read once per tile of queries (throughput of query batches).
  void (*dot_f32_batch)(const float* q, std::size_t nq, const float* db, std::size_t n,
                        std::size_t d, float* out);
  // Batched int8, same layout as dot_f32_batch.
  void (*dot_i8_batch)(const std::int8_t* q, std::size_t nq, const std::int8_t* db, std::size_t n,
                       std::size_t d, std::int32_t* out);
  // Widen count half-precision values to float32 (exact). Batches of queries
  // against a float16 database widen a block once and use dot_f32_batch.
  void (*f16_to_f32)(const std::uint16_t* src, std::size_t count, float* dst);
};

// Kernel table of a level; nullptr if this build has no kernels for it.
const KernelTable* kernels_for(SimdLevel level);

// Kernels of the active level.
const KernelTable& active_kernels();

// Per-level tables, defined in src/kernels/<level>.cpp.
const KernelTable& scalar_kernels();
#if defined(VPR_HAVE_AVX2)
const KernelTable& avx2_kernels();
#endif
#if defined(VPR_HAVE_AVX512)
const KernelTable& avx512_kernels();
#endif
#if defined(VPR_HAVE_NEON)
const KernelTable& neon_kernels();
#endif
#if defined(VPR_HAVE_NEON_DOTPROD)
const KernelTable& neon_dotprod_kernels();
#endif

// Half <-> float conversions (round to nearest even), shared by all levels.
std::uint16_t float_to_half(float value);
float half_to_float(std::uint16_t bits);

}  // namespace vpr
