// AMX-INT8 kernels (Intel Sapphire Rapids and later). The SimdLevel::Amx table is the
// AVX-512 table with dot_i8_batch replaced. A single query is bound by memory bandwidth,
// where tiles buy nothing, so it keeps the AVX-512 kernels; a batch of queries over a
// cached block of rows is bound by arithmetic, where one tdpbssd does 16 x 16 x 64
// multiply-adds, 16 times the work of a vpdpbusd (docs/matching_speed.md has the figures).
// Compiled with -mamx-tile -mamx-int8 and the AVX-512 flags; only reached where
// cpu_runs(SimdLevel::Amx), which includes the kernel's permission to use tile data.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tiling.hpp"
#include "vpr/kernels.hpp"

namespace vpr {
namespace {

constexpr std::size_t kRows = 16;  // rows of a tile: 16 database rows, or 16 queries' k/4
constexpr std::size_t kStep = 64;  // bytes of each row a tile covers

// The tile layout of palette 1, as ldtilecfg reads it (64 bytes).
struct alignas(64) TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

// Every tile is 16 rows x 64 bytes: tmm0-3 hold C (int32, 16 database rows x 16 queries)
// for 2 row groups x 2 query groups, tmm4-5 the 2 row groups' A (int8 database bytes),
// tmm6-7 the 2 query groups' B (queries packed 4 bytes per query per tile row).
void configure_tiles() {
  TileConfig c;
  for (int t = 0; t < 8; ++t) {
    c.rows[t] = kRows;
    c.colsb[t] = kStep;
  }
  _tile_loadconfig(&c);
}

std::size_t steps_for(std::size_t d) { return (d + kStep - 1) / kStep; }
// Query groups of 16, rounded up to even so that every tile step has two.
std::size_t groups_for(std::size_t nq) { return ((nq + kRows - 1) / kRows + 1) / 2 * 2; }

std::size_t packed_i8_bytes(std::size_t nq, std::size_t d) {
  return groups_for(nq) * steps_for(d) * kRows * kStep;
}

// B operand of tdpbssd: for query group g and k-step s, a 16 x 64 byte block whose row r
// holds bytes 4r..4r+3 of the step for each of the 16 queries in turn. Queries past nq
// and bytes past d are zero, so they add nothing to any sum.
void pack_i8_queries(const std::int8_t* q, std::size_t nq, std::size_t d, std::int8_t* packed) {
  const std::size_t steps = steps_for(d);
  std::memset(packed, 0, packed_i8_bytes(nq, d));
  for (std::size_t j = 0; j < nq; ++j) {
    const std::int8_t* src = q + j * d;
    std::int8_t* group = packed + (j / kRows) * steps * kRows * kStep + (j % kRows) * 4;
    for (std::size_t k = 0; k < d; k += 4) {
      // Bytes k..k+3 go to row (k % 64) / 4 of step k / 64.
      std::int8_t* dst = group + (k / kStep) * kRows * kStep + ((k % kStep) / 4) * kStep;
      std::memcpy(dst, src + k, std::min<std::size_t>(4, d - k));
    }
  }
}

void dot_i8_batch_packed(const std::int8_t* packed, std::size_t nq, const std::int8_t* db,
                         std::size_t n, std::size_t d, std::int32_t* out) {
  if (nq == 0 || n == 0) return;
  const std::size_t steps = steps_for(d), padded = steps * kStep, groups = groups_for(nq);
  // A tile load reads 64 bytes per row, so the last step of a row whose length is not a
  // multiple of 64 reads into the next row (bytes that meet zero query bytes). Row groups
  // where that would pass the end of the database are read from this zero-padded copy
  // instead, which ends with one group of zero rows for a pair's missing second group.
  std::size_t tail_first = 0;  // first row group read from `tail`
  while (tail_first < n && (tail_first + kRows - 1) * d + padded <= n * d) tail_first += kRows;
  const std::size_t tail_groups = (n - tail_first + kRows - 1) / kRows + 1;
  // Per thread, kept between calls: the scan layer calls once per 128 KB block of rows.
  thread_local std::vector<std::int8_t> tail;
  tail.assign(tail_groups * kRows * padded, 0);
  for (std::size_t i = tail_first; i < n; ++i) {
    std::memcpy(tail.data() + (i - tail_first) * padded, db + i * d, d);
  }
  const std::int8_t* zeros = tail.data() + (tail_groups - 1) * kRows * padded;
  auto rows_at = [&](std::size_t i, long& stride) -> const std::int8_t* {
    if (i >= n) {
      stride = static_cast<long>(padded);
      return zeros;
    }
    if (i < tail_first) {
      stride = static_cast<long>(d);
      return db + i * d;
    }
    stride = static_cast<long>(padded);
    return tail.data() + (i - tail_first) * padded;
  };

  // A block of rows stays in L2 while every query pair passes over it, row pair by row
  // pair (rows outside and queries inside measured slower: each row pair then writes to
  // all nq output rows at once).
  alignas(64) std::int32_t c[4][kRows * kRows];
  const __m512i column =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(kRows));
  const std::size_t block = std::max<std::size_t>(
      2 * kRows, kBatchBlockBytes / std::max<std::size_t>(d, 1) / (2 * kRows) * (2 * kRows));
  configure_tiles();
  for (std::size_t i0 = 0; i0 < n; i0 += block) {
    const std::size_t i1 = std::min(n, i0 + block);
    for (std::size_t g = 0; g < groups; g += 2) {
      const std::int8_t* b0 = packed + g * steps * kRows * kStep;
      const std::int8_t* b1 = b0 + steps * kRows * kStep;
      for (std::size_t i = i0; i < i1; i += 2 * kRows) {
        long s0 = 0, s1 = 0;
        const std::int8_t* a0 = rows_at(i, s0);
        const std::int8_t* a1 = rows_at(i + kRows, s1);  // zeros past n
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (std::size_t s = 0; s < steps; ++s) {
          _tile_loadd(4, a0 + s * kStep, s0);
          _tile_loadd(5, a1 + s * kStep, s1);
          _tile_loadd(6, b0 + s * kRows * kStep, kStep);
          _tile_loadd(7, b1 + s * kRows * kStep, kStep);
          _tile_dpbssd(0, 4, 6);
          _tile_dpbssd(1, 4, 7);
          _tile_dpbssd(2, 5, 6);
          _tile_dpbssd(3, 5, 7);
        }
        _tile_stored(0, c[0], kRows * sizeof(std::int32_t));
        _tile_stored(1, c[1], kRows * sizeof(std::int32_t));
        _tile_stored(2, c[2], kRows * sizeof(std::int32_t));
        _tile_stored(3, c[3], kRows * sizeof(std::int32_t));
        // c[t][r * 16 + col]: database row r of the tile's row group against query col;
        // a gather down column col gives the 16 contiguous outputs of that query.
        for (int t = 0; t < 4; ++t) {
          const std::size_t row0 = i + static_cast<std::size_t>(t >> 1) * kRows;
          const std::size_t q0 = (g + static_cast<std::size_t>(t & 1)) * kRows;
          if (row0 >= i1 || q0 >= nq) continue;
          const std::size_t nr = std::min(kRows, i1 - row0), nc = std::min(kRows, nq - q0);
          const __mmask16 rows_valid = static_cast<__mmask16>((1u << nr) - 1);
          for (std::size_t col = 0; col < nc; ++col) {
            const __m512i v =
                _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), 0xffff, column, c[t] + col, 4);
            _mm512_mask_storeu_epi32(out + (q0 + col) * n + row0, rows_valid, v);
          }
        }
      }
    }
  }
  _tile_release();
}

// The same, for callers that hold unpacked queries (a thread-local buffer, so that calls
// per block do not allocate). Searches pack once per scan instead (score_block).
void dot_i8_batch_amx(const std::int8_t* q, std::size_t nq, const std::int8_t* db, std::size_t n,
                      std::size_t d, std::int32_t* out) {
  thread_local std::vector<std::int8_t> packed;
  packed.resize(packed_i8_bytes(nq, d));
  pack_i8_queries(q, nq, d, packed.data());
  dot_i8_batch_packed(packed.data(), nq, db, n, d, out);
}

}  // namespace

const KernelTable& amx_kernels(RowOrder order) {
  auto with_amx = [](RowOrder o) {
    KernelTable t = avx512_kernels(o);
    t.dot_i8_batch = dot_i8_batch_amx;
    t.packed_i8_bytes = packed_i8_bytes;
    t.pack_i8_queries = pack_i8_queries;
    t.dot_i8_batch_packed = dot_i8_batch_packed;
    return t;
  };
  static const KernelTable tables[4] = {
      with_amx(RowOrder::Sequential), with_amx(RowOrder::Interleaved),
      with_amx(RowOrder::SequentialPrefetch), with_amx(RowOrder::SequentialSplitLoads)};
  return tables[static_cast<int>(order)];
}

}  // namespace vpr
