// Register-tiling driver shared by the SIMD kernel files. Everything here has
// internal linkage on purpose: each kernel file is compiled with different
// instruction-set flags, so instantiations must never be merged across files.
#pragma once

#include <algorithm>
#include <cstddef>

namespace vpr {
namespace {

// A tile policy P provides `template <int Q, int R> void tile(size_t j, size_t i) const`,
// computing out[(j + a) * n + i + b] for a < Q queries and b < R database rows.

// Dispatches a runtime remainder (0 < rem <= K) to the compile-time tile<Q, rem>.
template <class P, int Q, int K>
inline void tile_rows_rem(const P& p, std::size_t rem, std::size_t j, std::size_t i) {
  if constexpr (K > 0) {
    if (rem == K) {
      p.template tile<Q, K>(j, i);
    } else {
      tile_rows_rem<P, Q, K - 1>(p, rem, j, i);
    }
  }
}

// Queries j..j+Q-1 against rows [i0, i1) in tiles of R rows.
template <class P, int Q, int R>
inline void tile_rows(const P& p, std::size_t j, std::size_t i0, std::size_t i1) {
  std::size_t i = i0;
  for (; i + R <= i1; i += R) p.template tile<Q, R>(j, i);
  if (i < i1) tile_rows_rem<P, Q, R - 1>(p, i1 - i, j, i);
}

template <class P, int K, int R>
inline void tile_queries_rem(const P& p, std::size_t rem, std::size_t j, std::size_t i0,
                             std::size_t i1) {
  if constexpr (K > 0) {
    if (rem == K) {
      tile_rows<P, K, R>(p, j, i0, i1);
    } else {
      tile_queries_rem<P, K - 1, R>(p, rem, j, i0, i1);
    }
  }
}

// Runs nq queries over n rows in Q x R register tiles. Rows are processed in
// blocks of about block_bytes so that a block stays in L2 while every query
// tile passes over it: each row then comes from DRAM once per call.
template <class P, int Q, int R>
inline void run_tiled(const P& p, std::size_t nq, std::size_t n, std::size_t row_bytes,
                      std::size_t block_bytes) {
  if (nq == 0 || n == 0) return;
  std::size_t block = std::max<std::size_t>(R, block_bytes / std::max<std::size_t>(row_bytes, 1));
  block -= block % R;
  if (nq <= 1) block = n;  // A single query streams; blocking buys nothing.
  for (std::size_t i0 = 0; i0 < n; i0 += block) {
    const std::size_t i1 = std::min(n, i0 + block);
    std::size_t j = 0;
    for (; j + Q <= nq; j += Q) tile_rows<P, Q, R>(p, j, i0, i1);
    if (j < nq) tile_queries_rem<P, Q - 1, R>(p, nq - j, j, i0, i1);
  }
}

// RowOrder::SequentialPrefetch: rows in order as P reads them, plus a software prefetch
// of the rows kPrefetchAhead bytes further on before each tile. Measured on Zen 3 it
// gained 15-20% for int8 rows of 256-512 bytes and lost as much for float32 rows of 4 KB
// (docs/matching_speed.md), so it is a calibration candidate, not the default.
constexpr std::size_t kPrefetchAhead = 2048;

// Prefetch distance of the PQ fast scans (AVX2, AVX-512), measured on Zen 3 at 1M places x
// 32 B (docs/pq.md): none 3.98 ms, 4 KB 3.15, 8 KB 3.33 / 2.11, 16 KB 2.17 (faiss
// IndexPQFastScan 3.6 / 2.7 in the same runs; the host's bandwidth moved between runs); the
// Xeon guest's AVX-512 scan is flat within 3 % from 4 to 32 KB.
constexpr std::size_t kPq4PrefetchBytes = 8192;

template <class P>
struct WithPrefetch {
  P inner;
  const unsigned char* rows;
  std::size_t row_bytes;

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    // One prefetch per cache line; tiles advance by R rows, so each line is asked once.
    // Prefetches past the end of the rows are harmless: they never fault.
    const unsigned char* ahead = rows + i * row_bytes + kPrefetchAhead;
    for (std::size_t o = 0; o < R * row_bytes; o += 64) __builtin_prefetch(ahead + o);
    inner.template tile<Q, R>(j, i);
  }
};

// Runs a single-query rows-in-order policy with the prefetch above.
template <class P, int R>
inline void run_prefetched(const P& p, const void* rows, std::size_t n, std::size_t row_bytes) {
  run_tiled<WithPrefetch<P>, 1, R>(
      WithPrefetch<P>{p, static_cast<const unsigned char*>(rows), row_bytes}, 1, n, row_bytes, 0);
}

// L2-resident block of database rows for the batched kernels (L2 is 512 KB to
// 2 MB on current x86 and Cortex-A7x cores; half of the smallest leaves room).
constexpr std::size_t kBatchBlockBytes = 256 * 1024;

}  // namespace
}  // namespace vpr
