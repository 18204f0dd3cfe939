// AVX-512 (F/BW/VL/DQ + VPOPCNTDQ + VNNI) kernels. Compiled with those flags only
// for this file; the dispatcher calls them only on CPUs that have them.
// GCC 12 reports its own _mm256_undefined_*() (self-initialised on purpose) as
// uninitialised once the 512-bit extract intrinsics are inlined: a false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <array>
#pragma GCC diagnostic pop

#include <cstring>
#include <vector>

#include "short_codes.hpp"
#include "tiling.hpp"
#include "vpr/kernels.hpp"

namespace vpr {
namespace {

// ---- horizontal reductions ------------------------------------------------

inline __m256 fold_ps(__m512 a) {
  return _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
}

inline __m256i fold_epi32(__m512i a) {
  return _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
}

// Four sums from four accumulators: fold to 256 bits, then one hadd tree.
inline __m128 hsum4_ps(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(fold_ps(a), fold_ps(b)),
                                  _mm256_hadd_ps(fold_ps(c), fold_ps(d)));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

inline __m128i hsum4_epi32(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(fold_epi32(a), fold_epi32(b)),
                                      _mm256_hadd_epi32(fold_epi32(c), fold_epi32(d)));
  return _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
}

template <int N>
inline void reduce_ps(const __m512* acc, float* res) {
  int t = 0;
  for (; t + 4 <= N; t += 4) {
    _mm_storeu_ps(res + t, hsum4_ps(acc[t], acc[t + 1], acc[t + 2], acc[t + 3]));
  }
  for (; t < N; ++t) res[t] = _mm512_reduce_add_ps(acc[t]);
}

template <int N>
inline void reduce_epi32(const __m512i* acc, std::int32_t* res) {
  int t = 0;
  for (; t + 4 <= N; t += 4) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(res + t),
                     hsum4_epi32(acc[t], acc[t + 1], acc[t + 2], acc[t + 3]));
  }
  for (; t < N; ++t) res[t] = _mm512_reduce_add_epi32(acc[t]);
}

// ---- float32 ----------------------------------------------------------------

struct F32Tile {
  const float* q;
  const float* db;
  std::size_t n, d;
  float* out;

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    const float* qp = q + j * d;
    const float* bp = db + i * d;
    __m512 acc[Q * R];
    for (int t = 0; t < Q * R; ++t) acc[t] = _mm512_setzero_ps();
    std::size_t k = 0;
    for (; k + 16 <= d; k += 16) {
      __m512 b[R];
      for (int r = 0; r < R; ++r) b[r] = _mm512_loadu_ps(bp + r * d + k);
      for (int a = 0; a < Q; ++a) {
        const __m512 x = _mm512_loadu_ps(qp + a * d + k);
        for (int r = 0; r < R; ++r) acc[a * R + r] = _mm512_fmadd_ps(x, b[r], acc[a * R + r]);
      }
    }
    if (k < d) {
      const __mmask16 m = static_cast<__mmask16>((1u << (d - k)) - 1);
      __m512 b[R];
      for (int r = 0; r < R; ++r) b[r] = _mm512_maskz_loadu_ps(m, bp + r * d + k);
      for (int a = 0; a < Q; ++a) {
        const __m512 x = _mm512_maskz_loadu_ps(m, qp + a * d + k);
        for (int r = 0; r < R; ++r) acc[a * R + r] = _mm512_fmadd_ps(x, b[r], acc[a * R + r]);
      }
    }
    float res[Q * R];
    reduce_ps<Q * R>(acc, res);
    for (int a = 0; a < Q; ++a) {
      for (int r = 0; r < R; ++r) out[(j + a) * n + i + r] = res[a * R + r];
    }
  }
};

inline __mmask16 mask16(std::size_t rem) { return static_cast<__mmask16>((1u << rem) - 1); }

// Rows in address order (RowOrder::Sequential): each row start to end before the next,
// one sequential stream for the hardware prefetchers; four partial sums hide the FMA
// latency and four rows share one reduction. With Split (RowOrder::SequentialSplitLoads)
// each 64 bytes of a row are read as two 32-byte loads: on a Xeon (intel-6-167) one load
// per cache line left the stream to DRAM 25% slower, as if the core's streaming
// prefetcher wants two accesses per line to follow a stream.
template <bool Split>
struct F32RowsInOrder {
  const float* q;
  const float* db;
  std::size_t n, d;
  float* out;

  static __m512 load(const float* p) {
    if constexpr (Split) {
      return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(p)), _mm256_loadu_ps(p + 8),
                                1);
    } else {
      return _mm512_loadu_ps(p);
    }
  }

  __m512 row(const float* bp) const {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
           a3 = _mm512_setzero_ps();
    std::size_t k = 0;
    for (; k + 64 <= d; k += 64) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + k), load(bp + k), a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + k + 16), load(bp + k + 16), a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(q + k + 32), load(bp + k + 32), a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(q + k + 48), load(bp + k + 48), a3);
    }
    for (; k + 16 <= d; k += 16) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + k), load(bp + k), a0);
    }
    if (k < d) {
      const __mmask16 m = mask16(d - k);
      a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + k), _mm512_maskz_loadu_ps(m, bp + k), a1);
    }
    return _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
  }

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = row(db + (i + r) * d);
    float res[R];
    reduce_ps<R>(acc, res);
    for (int r = 0; r < R; ++r) out[j * n + i + r] = res[r];
  }
};

void dot_f32(const float* q, const float* db, std::size_t n, std::size_t d, float* out) {
  run_tiled<F32RowsInOrder<false>, 1, 4>(F32RowsInOrder<false>{q, db, n, d, out}, 1, n,
                                         d * sizeof(float), 0);
}

void dot_f32_prefetch(const float* q, const float* db, std::size_t n, std::size_t d, float* out) {
  run_prefetched<F32RowsInOrder<false>, 4>(F32RowsInOrder<false>{q, db, n, d, out}, db, n,
                                           d * sizeof(float));
}

void dot_f32_split(const float* q, const float* db, std::size_t n, std::size_t d, float* out) {
  run_tiled<F32RowsInOrder<true>, 1, 4>(F32RowsInOrder<true>{q, db, n, d, out}, 1, n,
                                        d * sizeof(float), 0);
}

// RowOrder::Interleaved: eight rows advanced together.
void dot_f32_interleaved(const float* q, const float* db, std::size_t n, std::size_t d,
                         float* out) {
  run_tiled<F32Tile, 1, 8>(F32Tile{q, db, n, d, out}, 1, n, d * sizeof(float), 0);
}

void dot_f32_batch(const float* q, std::size_t nq, const float* db, std::size_t n, std::size_t d,
                   float* out) {
  // 6 queries x 4 rows: 24 accumulators + 4 row registers of the 32 zmm. Measured
  // on Zen 5 against 8x3, 4x6, 5x4 and 4x4 at d = 256 and 1024.
  run_tiled<F32Tile, 6, 4>(F32Tile{q, db, n, d, out}, nq, n, d * sizeof(float), kBatchBlockBytes);
}

// ---- float16 database -----------------------------------------------------------

struct F16Tile {
  const float* q;
  const std::uint16_t* db;
  std::size_t n, d;
  float* out;

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    const std::uint16_t* bp = db + i * d;
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    std::size_t k = 0;
    for (; k + 16 <= d; k += 16) {
      const __m512 x = _mm512_loadu_ps(q + k);
      for (int r = 0; r < R; ++r) {
        const __m512 b =
            _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + r * d + k)));
        acc[r] = _mm512_fmadd_ps(x, b, acc[r]);
      }
    }
    if (k < d) {
      const __mmask16 m = static_cast<__mmask16>((1u << (d - k)) - 1);
      const __m512 x = _mm512_maskz_loadu_ps(m, q + k);
      for (int r = 0; r < R; ++r) {
        const __m512 b = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, bp + r * d + k));
        acc[r] = _mm512_fmadd_ps(x, b, acc[r]);
      }
    }
    float res[R];
    reduce_ps<R>(acc, res);
    for (int r = 0; r < R; ++r) out[j * n + i + r] = res[r];
  }
};

// Rows in address order, as F32RowsInOrder.
struct F16RowsInOrder {
  const float* q;
  const std::uint16_t* db;
  std::size_t n, d;
  float* out;

  static __m512 widen(const std::uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }

  __m512 row(const std::uint16_t* bp) const {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
           a3 = _mm512_setzero_ps();
    std::size_t k = 0;
    for (; k + 64 <= d; k += 64) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + k), widen(bp + k), a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + k + 16), widen(bp + k + 16), a1);
      a2 = _mm512_fmadd_ps(_mm512_loadu_ps(q + k + 32), widen(bp + k + 32), a2);
      a3 = _mm512_fmadd_ps(_mm512_loadu_ps(q + k + 48), widen(bp + k + 48), a3);
    }
    for (; k + 16 <= d; k += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + k), widen(bp + k), a0);
    if (k < d) {
      const __mmask16 m = mask16(d - k);
      const __m512 b = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, bp + k));
      a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + k), b, a1);
    }
    return _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
  }

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    __m512 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = row(db + (i + r) * d);
    float res[R];
    reduce_ps<R>(acc, res);
    for (int r = 0; r < R; ++r) out[j * n + i + r] = res[r];
  }
};

void dot_f16(const float* q, const std::uint16_t* db, std::size_t n, std::size_t d, float* out) {
  run_tiled<F16RowsInOrder, 1, 4>(F16RowsInOrder{q, db, n, d, out}, 1, n, d * 2, 0);
}

void dot_f16_prefetch(const float* q, const std::uint16_t* db, std::size_t n, std::size_t d,
                      float* out) {
  run_prefetched<F16RowsInOrder, 4>(F16RowsInOrder{q, db, n, d, out}, db, n, d * 2);
}

void dot_f16_interleaved(const float* q, const std::uint16_t* db, std::size_t n, std::size_t d,
                         float* out) {
  run_tiled<F16Tile, 1, 8>(F16Tile{q, db, n, d, out}, 1, n, d * 2, 0);
}

// ---- int8 (VNNI) --------------------------------------------------------------------
// vpdpbusd multiplies unsigned by signed bytes. Flipping the database byte's sign
// bit gives x + 128 in [1, 255] (unsigned), so the accumulated sum is
// <q, x> + 128 * sum(q); the second term is subtracted once per query.

struct I8Tile {
  const std::int8_t* q;
  const std::int32_t* qbias;  // 128 * sum(q_j) per query
  const std::int8_t* db;
  std::size_t n, d;
  std::int32_t* out;

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    const std::int8_t* qp = q + j * d;
    const std::int8_t* bp = db + i * d;
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i acc[Q * R];
    for (int t = 0; t < Q * R; ++t) acc[t] = _mm512_setzero_si512();
    std::size_t k = 0;
    for (; k + 64 <= d; k += 64) {
      __m512i b[R];
      for (int r = 0; r < R; ++r) b[r] = _mm512_xor_si512(_mm512_loadu_si512(bp + r * d + k), flip);
      for (int a = 0; a < Q; ++a) {
        const __m512i x = _mm512_loadu_si512(qp + a * d + k);
        for (int r = 0; r < R; ++r) acc[a * R + r] = _mm512_dpbusd_epi32(acc[a * R + r], b[r], x);
      }
    }
    if (k < d) {
      // Masked-off query bytes are zero, so the flipped zero database bytes add nothing.
      const __mmask64 m = (~__mmask64{0}) >> (64 - (d - k));
      __m512i b[R];
      for (int r = 0; r < R; ++r) {
        b[r] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, bp + r * d + k), flip);
      }
      for (int a = 0; a < Q; ++a) {
        const __m512i x = _mm512_maskz_loadu_epi8(m, qp + a * d + k);
        for (int r = 0; r < R; ++r) acc[a * R + r] = _mm512_dpbusd_epi32(acc[a * R + r], b[r], x);
      }
    }
    std::int32_t res[Q * R];
    reduce_epi32<Q * R>(acc, res);
    for (int a = 0; a < Q; ++a) {
      for (int r = 0; r < R; ++r) out[(j + a) * n + i + r] = res[a * R + r] - qbias[j + a];
    }
  }
};

std::vector<std::int32_t> query_bias(const std::int8_t* q, std::size_t nq, std::size_t d) {
  std::vector<std::int32_t> bias(nq);
  for (std::size_t j = 0; j < nq; ++j) {
    std::int32_t s = 0;
    for (std::size_t k = 0; k < d; ++k) s += q[j * d + k];
    bias[j] = 128 * s;
  }
  return bias;
}

// Rows in address order with the VNNI arithmetic of I8Tile: two partial sums per row,
// four rows per reduction.
struct I8RowsInOrder {
  const std::int8_t* q;
  std::int32_t qbias;
  const std::int8_t* db;
  std::size_t n, d;
  std::int32_t* out;

  __m512i row(const std::int8_t* bp) const {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
    std::size_t k = 0;
    for (; k + 128 <= d; k += 128) {
      a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_loadu_si512(bp + k), flip),
                               _mm512_loadu_si512(q + k));
      a1 = _mm512_dpbusd_epi32(a1, _mm512_xor_si512(_mm512_loadu_si512(bp + k + 64), flip),
                               _mm512_loadu_si512(q + k + 64));
    }
    for (; k + 64 <= d; k += 64) {
      a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_loadu_si512(bp + k), flip),
                               _mm512_loadu_si512(q + k));
    }
    if (k < d) {  // masked-off query bytes are zero: the flipped zero bytes add nothing
      const __mmask64 m = (~__mmask64{0}) >> (64 - (d - k));
      a1 = _mm512_dpbusd_epi32(a1, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, bp + k), flip),
                               _mm512_maskz_loadu_epi8(m, q + k));
    }
    return _mm512_add_epi32(a0, a1);
  }

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    __m512i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = row(db + (i + r) * d);
    std::int32_t res[R];
    reduce_epi32<R>(acc, res);
    for (int r = 0; r < R; ++r) out[j * n + i + r] = res[r] - qbias;
  }
};

void dot_i8(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
            std::int32_t* out) {
  const std::int32_t bias = query_bias(q, 1, d)[0];
  run_tiled<I8RowsInOrder, 1, 4>(I8RowsInOrder{q, bias, db, n, d, out}, 1, n, d, 0);
}

void dot_i8_prefetch(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
                     std::int32_t* out) {
  const std::int32_t bias = query_bias(q, 1, d)[0];
  run_prefetched<I8RowsInOrder, 4>(I8RowsInOrder{q, bias, db, n, d, out}, db, n, d);
}

void dot_i8_interleaved(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
                        std::int32_t* out) {
  const std::vector<std::int32_t> bias = query_bias(q, 1, d);
  run_tiled<I8Tile, 1, 8>(I8Tile{q, bias.data(), db, n, d, out}, 1, n, d, 0);
}

void dot_i8_batch(const std::int8_t* q, std::size_t nq, const std::int8_t* db, std::size_t n,
                  std::size_t d, std::int32_t* out) {
  // 4 x 4 tile: the fastest of 8x3, 6x4, 4x6 and 4x4 measured on Zen 5.
  const std::vector<std::int32_t> bias = query_bias(q, nq, d);
  run_tiled<I8Tile, 4, 4>(I8Tile{q, bias.data(), db, n, d, out}, nq, n, d, kBatchBlockBytes);
}

// ---- hamming (VPOPCNTDQ) ----------------------------------------------------------

struct HammingTile {
  const std::uint8_t* q;
  const std::uint8_t* db;
  std::size_t n, nbytes;
  std::uint32_t* out;

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    const std::uint8_t* bp = db + i * nbytes;
    __m512i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
    std::size_t k = 0;
    for (; k + 64 <= nbytes; k += 64) {
      const __m512i x = _mm512_loadu_si512(q + k);
      for (int r = 0; r < R; ++r) {
        const __m512i v = _mm512_xor_si512(x, _mm512_loadu_si512(bp + r * nbytes + k));
        acc[r] = _mm512_add_epi64(acc[r], _mm512_popcnt_epi64(v));
      }
    }
    if (k < nbytes) {
      const __mmask64 m = (~__mmask64{0}) >> (64 - (nbytes - k));
      const __m512i x = _mm512_maskz_loadu_epi8(m, q + k);
      for (int r = 0; r < R; ++r) {
        const __m512i v = _mm512_xor_si512(x, _mm512_maskz_loadu_epi8(m, bp + r * nbytes + k));
        acc[r] = _mm512_add_epi64(acc[r], _mm512_popcnt_epi64(v));
      }
    }
    for (int r = 0; r < R; ++r) {
      out[j * n + i + r] = static_cast<std::uint32_t>(_mm512_reduce_add_epi64(acc[r]));
    }
  }
};

// Per-row 64-bit popcount lanes of eight rows are summed by a transpose tree
// (unpack, then two 128-bit lane shuffles): one reduction per eight rows instead
// of one _mm512_reduce_add per row. Returns (r0 .. r7) when v[j] holds the
// partial counts of rows (a_j, b_j) as below.
inline __m512i pair_sums(__m512i a, __m512i b) {
  // Lane k (128 bits) of the result: (a[2k] + a[2k+1], b[2k] + b[2k+1]).
  return _mm512_add_epi64(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}

inline __m512i fold_lanes(__m512i x, __m512i y) {
  // (x.L0 + x.L1, x.L2 + x.L3, y.L0 + y.L1, y.L2 + y.L3) over 128-bit lanes.
  return _mm512_add_epi64(_mm512_shuffle_i64x2(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_i64x2(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
}

// Codes of a multiple of 64 bytes: acc[r] accumulates row r's 8 lanes.
void hamming_rows8_wide(const std::uint8_t* q, const std::uint8_t* db, std::size_t nbytes,
                        std::uint32_t* out) {
  __m512i acc[8];
  for (int r = 0; r < 8; ++r) acc[r] = _mm512_setzero_si512();
  for (std::size_t k = 0; k < nbytes; k += 64) {
    const __m512i x = _mm512_loadu_si512(q + k);
    for (int r = 0; r < 8; ++r) {
      const __m512i v = _mm512_xor_si512(x, _mm512_loadu_si512(db + r * nbytes + k));
      acc[r] = _mm512_add_epi64(acc[r], _mm512_popcnt_epi64(v));
    }
  }
  const __m512i total =
      fold_lanes(fold_lanes(pair_sums(acc[0], acc[1]), pair_sums(acc[2], acc[3])),
                 fold_lanes(pair_sums(acc[4], acc[5]), pair_sums(acc[6], acc[7])));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_cvtepi64_epi32(total));
}

// 32-byte codes: one register holds two consecutive rows.
void hamming_rows8_32(const __m512i qq, const std::uint8_t* db, std::uint32_t* out) {
  __m512i v[4];
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm512_popcnt_epi64(_mm512_xor_si512(qq, _mm512_loadu_si512(db + 64 * j)));
  }
  // Rows come out as (0, 2, 1, 3, 4, 6, 5, 7).
  const __m512i mixed = fold_lanes(pair_sums(v[0], v[1]), pair_sums(v[2], v[3]));
  const __m512i order = _mm512_setr_epi64(0, 2, 1, 3, 4, 6, 5, 7);
  const __m512i total = _mm512_permutexvar_epi64(order, mixed);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_cvtepi64_epi32(total));
}

void hamming(const std::uint8_t* q, const std::uint8_t* db, std::size_t n, std::size_t nbytes,
             std::uint32_t* out) {
  std::size_t i = 0;
  if (nbytes % 64 == 0) {
    for (; i + 8 <= n; i += 8) hamming_rows8_wide(q, db + i * nbytes, nbytes, out + i);
  } else if (nbytes == 32) {
    const __m512i qq =
        _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
    for (; i + 8 <= n; i += 8) hamming_rows8_32(qq, db + i * 32, out + i);
  }
  const std::uint8_t* rest = db + i * nbytes;
  if (hamming_short_codes(q, rest, n - i, nbytes, out + i)) return;
  run_tiled<HammingTile, 1, 4>(HammingTile{q, rest, n - i, nbytes, out + i}, 1, n - i, nbytes, 0);
}

void f16_to_f32(const std::uint16_t* src, std::size_t count, float* dst) {
  std::size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(h));
  }
  for (; i < count; ++i) dst[i] = half_to_float(src[i]);
}

// ---- PQ fast scan (4-bit codes) -----------------------------------------------------
// Four sub-quantizers (j..j+3) per 64-byte step, summed without a widening shuffle. The
// earlier vpshufb + unpack + add step cost 13 vector ops, six of them shuffles;
// on Intel cores, where 512-bit ops issue on ports 0 and 5 only and every shuffle needs
// port 5, that bound the scan. Here:
// 1. one vpermb regathers the step's 64 code bytes so that bytes 4p..4p+3 are place p's
//    (and place p + 16's, in the high nibbles) codes of the four sub-quantizers;
// 2. index = nibble | 16 * sub-quantizer (one vpternlogd per nibble half) picks the
//    entry from the four 16-entry tables, which sit side by side in one 64-byte load,
//    with one vpermb (a 64-entry byte lookup) per half;
// 3. vpdpbusd against all-ones bytes adds each place's four uint8 entries into its
//    uint32 lane: exact, and the lanes are already in place order.
// Eight ops per step, three of them on port 5. vpermb is AVX512-VBMI, which every CPU
// of this level has (the level's VPOPCNTDQ + VNNI came with Ice Lake and Zen 4, as did
// VBMI); the dispatcher checks it all the same (simd.cpp). Sums stay below 2^16 for
// m <= 256 (pq.hpp), so the truncation to uint16 at the end is exact.
void pq4_scan(const std::uint8_t* lut, std::size_t m, const std::uint8_t* codes,
              std::size_t nblocks, std::uint16_t* out) {
  // Byte 4p + k takes byte p of lane k (sub-quantizer k), and indexes table k.
  alignas(64) static constexpr auto gather_bytes = [] {
    std::array<std::uint8_t, 64> g{};
    for (int i = 0; i < 64; ++i) g[i] = static_cast<std::uint8_t>(16 * (i % 4) + i / 4);
    return g;
  }();
  alignas(64) static constexpr auto table_offsets = [] {
    std::array<std::uint8_t, 64> o{};
    for (int i = 0; i < 64; ++i) o[i] = static_cast<std::uint8_t>(16 * (i % 4));
    return o;
  }();
  const __m512i gather = _mm512_load_si512(gather_bytes.data());
  const __m512i offsets = _mm512_load_si512(table_offsets.data());
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  const __m512i ones = _mm512_set1_epi8(1);
  constexpr int kAndOr = 0xea;  // vpternlogd truth table of (a & b) | c
  // m % 4 == 2 ends with half a step: masked loads zero the missing two sub-quantizers'
  // codes and tables, so their lookups add 0.
  const std::size_t m4 = m & ~std::size_t{3};
  const __mmask64 half = 0xffffffffULL;
  auto step = [&](__m512i c, __m512i t, __m512i& low, __m512i& high) {
    const __m512i by_place = _mm512_permutexvar_epi8(gather, c);
    const __m512i lo_index = _mm512_ternarylogic_epi32(by_place, nibble, offsets, kAndOr);
    const __m512i hi_index =
        _mm512_ternarylogic_epi32(_mm512_srli_epi16(by_place, 4), nibble, offsets, kAndOr);
    low = _mm512_dpbusd_epi32(low, _mm512_permutexvar_epi8(lo_index, t), ones);
    high = _mm512_dpbusd_epi32(high, _mm512_permutexvar_epi8(hi_index, t), ones);
  };
  for (std::size_t b = 0; b < nblocks; ++b) {
    const std::uint8_t* block = codes + b * m * 16;
    __m512i low = _mm512_setzero_si512(), high = _mm512_setzero_si512();  // places 0-15, 16-31
    for (std::size_t j = 0; j < m4; j += 4) {
      _mm_prefetch(reinterpret_cast<const char*>(block + j * 16 + kPq4PrefetchBytes), _MM_HINT_T0);
      step(_mm512_loadu_si512(block + j * 16), _mm512_loadu_si512(lut + j * 16), low, high);
    }
    if (m4 < m) {
      step(_mm512_maskz_loadu_epi8(half, block + m4 * 16),
           _mm512_maskz_loadu_epi8(half, lut + m4 * 16), low, high);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 32), _mm512_cvtepi32_epi16(low));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 32 + 16), _mm512_cvtepi32_epi16(high));
  }
}

}  // namespace

const KernelTable& avx512_kernels(RowOrder order) {
  static const KernelTable sequential{dot_f32,       dot_f16,      dot_i8,     hamming,
                                      dot_f32_batch, dot_i8_batch, f16_to_f32, pq4_scan};
  static const KernelTable interleaved{
      dot_f32_interleaved, dot_f16_interleaved, dot_i8_interleaved, hamming,
      dot_f32_batch,       dot_i8_batch,        f16_to_f32,         pq4_scan};
  static const KernelTable prefetch{dot_f32_prefetch, dot_f16_prefetch, dot_i8_prefetch, hamming,
                                    dot_f32_batch,    dot_i8_batch,     f16_to_f32,      pq4_scan};
  static const KernelTable split{dot_f32_split, dot_f16,      dot_i8,     hamming,
                                 dot_f32_batch, dot_i8_batch, f16_to_f32, pq4_scan};
  if (order == RowOrder::SequentialPrefetch) return prefetch;
  if (order == RowOrder::SequentialSplitLoads) return split;
  return order == RowOrder::Interleaved ? interleaved : sequential;
}

}  // namespace vpr
