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
  // Product-quantizer "fast scan" of 4-bit codes in blocks of 32 places (layout in
  // vpr/pq.hpp): out[b * 32 + i] = sum over sub-quantizers j < m of
  // lut[j * 16 + code(place 32 b + i, j)], for nblocks blocks. lut holds m x 16 uint8
  // entries; m is even and at most 256, so the uint16 sums are exact.
  void (*pq4_scan)(const std::uint8_t* lut, std::size_t m, const std::uint8_t* codes,
                   std::size_t nblocks, std::uint16_t* out);
  // Optional (nullptr where dot_i8_batch reads the queries as they are; set by amx): the
  // int8 batch on queries packed once per search, as the tile unit wants them, since
  // searches call the batch kernel block by block. packed_i8_bytes(nq, d) bytes hold
  // pack_i8_queries' output; dot_i8_batch_packed gives what dot_i8_batch gives.
  std::size_t (*packed_i8_bytes)(std::size_t nq, std::size_t d) = nullptr;
  void (*pack_i8_queries)(const std::int8_t* q, std::size_t nq, std::size_t d,
                          std::int8_t* packed) = nullptr;
  void (*dot_i8_batch_packed)(const std::int8_t* packed, std::size_t nq, const std::int8_t* db,
                              std::size_t n, std::size_t d, std::int32_t* out) = nullptr;
};

// How the single-query kernels (dot_f32, dot_f16, dot_i8) walk the database rows; the
// other kernels are the same in both tables. docs/matching_speed.md has the measurements.
enum class RowOrder : int {
  // Each row start to end, then the next: addresses in order, one stream for the
  // hardware prefetchers. The default.
  Sequential = 0,
  // A register tile of 4-8 rows advanced together chunk by chunk: one query load per
  // tile, but 4-8 streams d bytes apart, which prefetchers follow worse once rows stream
  // from DRAM. Kept as a candidate for calibration (vpr/kernel_tuning.hpp).
  Interleaved = 1,
  // Sequential, plus a software prefetch 2 KB ahead of each tile (a candidate too).
  SequentialPrefetch = 2,
  // Sequential, with each 64-byte line of a float32 row read as two 32-byte loads. Only
  // the AVX-512 float32 kernel differs (the other kernels and levels load 32 bytes or
  // less at a time already): on a Xeon one 64-byte load per line streamed from DRAM at
  // 13.4 GB/s and two 32-byte loads at 17.7 GB/s (docs/matching_speed.md). A candidate.
  SequentialSplitLoads = 3,
};

const char* row_order_name(RowOrder order);

// Kernel table of a level; nullptr if this build has no kernels for it (for amx also where
// the CPU or OS cannot run tiles: their instructions would fault). The scalar
// reference has one table for both orders.
const KernelTable* kernels_for(SimdLevel level, RowOrder order = RowOrder::Sequential);

// Kernels searches use now: those of a forced level (Sequential), else the choice of the
// per-microarchitecture table per kernel and row length (vpr/kernel_tuning.hpp).
const KernelTable& active_kernels();

// Per-level tables, defined in src/kernels/<level>.cpp.
const KernelTable& scalar_kernels();
#if defined(VPR_HAVE_AVX2)
const KernelTable& avx2_kernels(RowOrder order);
#endif
#if defined(VPR_HAVE_AVX512)
const KernelTable& avx512_kernels(RowOrder order);
#endif
#if defined(VPR_HAVE_AMX)
// The AVX-512 table with dot_i8_batch on AMX tiles (src/kernels/amx.cpp).
const KernelTable& amx_kernels(RowOrder order);
#endif
#if defined(VPR_HAVE_NEON)
const KernelTable& neon_kernels(RowOrder order);
#endif
#if defined(VPR_HAVE_NEON_DOTPROD)
const KernelTable& neon_dotprod_kernels(RowOrder order);
#endif

// PQ fast-scan kernels shared between tables: the dotprod table uses NEON's (the AVX-512
// table has its own, in src/kernels/avx512.cpp).
void pq4_scan_scalar(const std::uint8_t* lut, std::size_t m, const std::uint8_t* codes,
                     std::size_t nblocks, std::uint16_t* out);
#if defined(VPR_HAVE_AVX2)
void pq4_scan_avx2(const std::uint8_t* lut, std::size_t m, const std::uint8_t* codes,
                   std::size_t nblocks, std::uint16_t* out);
#endif
#if defined(VPR_HAVE_NEON)
void pq4_scan_neon(const std::uint8_t* lut, std::size_t m, const std::uint8_t* codes,
                   std::size_t nblocks, std::uint16_t* out);
#endif

// Half <-> float conversions (round to nearest even), shared by all levels.
std::uint16_t float_to_half(float value);
float half_to_float(std::uint16_t bits);

}  // namespace vpr
