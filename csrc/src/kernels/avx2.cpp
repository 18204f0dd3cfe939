// AVX2 + FMA + F16C + POPCNT kernels. Compiled with -mavx2 -mfma -mf16c -mpopcnt
// only for this file; the dispatcher calls them only on CPUs that have them.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "short_codes.hpp"
#include "tiling.hpp"
#include "vpr/kernels.hpp"

namespace vpr {
namespace {

// ---- horizontal reductions ------------------------------------------------

inline __m128 hsum4_ps(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

inline float hsum_ps(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m128i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i t = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
}

inline std::int32_t hsum_epi32(__m256i a) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// Reduces N accumulators to N sums, four at a time with the hadd tree.
template <int N>
inline void reduce_ps(const __m256* acc, float* res) {
  int t = 0;
  for (; t + 4 <= N; t += 4) {
    _mm_storeu_ps(res + t, hsum4_ps(acc[t], acc[t + 1], acc[t + 2], acc[t + 3]));
  }
  for (; t < N; ++t) res[t] = hsum_ps(acc[t]);
}

template <int N>
inline void reduce_epi32(const __m256i* acc, std::int32_t* res) {
  int t = 0;
  for (; t + 4 <= N; t += 4) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(res + t),
                     hsum4_epi32(acc[t], acc[t + 1], acc[t + 2], acc[t + 3]));
  }
  for (; t < N; ++t) res[t] = hsum_epi32(acc[t]);
}

// Lane mask with the first `rem` (< 8) lanes set, for maskload tails.
inline __m256i tail_mask(std::size_t rem) {
  alignas(32) static const std::int32_t kLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                      0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanes + 8 - rem));
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
    __m256 acc[Q * R];
    for (int t = 0; t < Q * R; ++t) acc[t] = _mm256_setzero_ps();
    std::size_t k = 0;
    for (; k + 8 <= d; k += 8) {
      __m256 b[R];
      for (int r = 0; r < R; ++r) b[r] = _mm256_loadu_ps(bp + r * d + k);
      for (int a = 0; a < Q; ++a) {
        const __m256 x = _mm256_loadu_ps(qp + a * d + k);
        for (int r = 0; r < R; ++r) acc[a * R + r] = _mm256_fmadd_ps(x, b[r], acc[a * R + r]);
      }
    }
    if (k < d) {
      const __m256i m = tail_mask(d - k);
      __m256 b[R];
      for (int r = 0; r < R; ++r) b[r] = _mm256_maskload_ps(bp + r * d + k, m);
      for (int a = 0; a < Q; ++a) {
        const __m256 x = _mm256_maskload_ps(qp + a * d + k, m);
        for (int r = 0; r < R; ++r) acc[a * R + r] = _mm256_fmadd_ps(x, b[r], acc[a * R + r]);
      }
    }
    float res[Q * R];
    reduce_ps<Q * R>(acc, res);
    for (int a = 0; a < Q; ++a) {
      for (int r = 0; r < R; ++r) out[(j + a) * n + i + r] = res[a * R + r];
    }
  }
};

// Rows in address order (RowOrder::Sequential): each row is read start to end before
// the next, so the hardware prefetchers see one sequential stream; four partial sums per
// row hide the FMA latency, and four rows share one reduction.
struct F32RowsInOrder {
  const float* q;
  const float* db;
  std::size_t n, d;
  float* out;

  __m256 row(const float* bp) const {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    std::size_t k = 0;
    for (; k + 32 <= d; k += 32) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + k), _mm256_loadu_ps(bp + k), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + k + 8), _mm256_loadu_ps(bp + k + 8), a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + k + 16), _mm256_loadu_ps(bp + k + 16), a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + k + 24), _mm256_loadu_ps(bp + k + 24), a3);
    }
    for (; k + 8 <= d; k += 8) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + k), _mm256_loadu_ps(bp + k), a0);
    }
    if (k < d) {
      const __m256i m = tail_mask(d - k);
      a1 = _mm256_fmadd_ps(_mm256_maskload_ps(q + k, m), _mm256_maskload_ps(bp + k, m), a1);
    }
    return _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
  }

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = row(db + (i + r) * d);
    float res[R];
    reduce_ps<R>(acc, res);
    for (int r = 0; r < R; ++r) out[j * n + i + r] = res[r];
  }
};

void dot_f32(const float* q, const float* db, std::size_t n, std::size_t d, float* out) {
  run_tiled<F32RowsInOrder, 1, 4>(F32RowsInOrder{q, db, n, d, out}, 1, n, d * sizeof(float), 0);
}

void dot_f32_prefetch(const float* q, const float* db, std::size_t n, std::size_t d, float* out) {
  run_prefetched<F32RowsInOrder, 4>(F32RowsInOrder{q, db, n, d, out}, db, n, d * sizeof(float));
}

// RowOrder::Interleaved: eight rows advanced together, one query load per eight rows.
void dot_f32_interleaved(const float* q, const float* db, std::size_t n, std::size_t d,
                         float* out) {
  run_tiled<F32Tile, 1, 8>(F32Tile{q, db, n, d, out}, 1, n, d * sizeof(float), 0);
}

void dot_f32_batch(const float* q, std::size_t nq, const float* db, std::size_t n, std::size_t d,
                   float* out) {
  // 4 queries x 3 rows: 12 accumulators + 3 row registers fill the 16 ymm registers.
  run_tiled<F32Tile, 4, 3>(F32Tile{q, db, n, d, out}, nq, n, d * sizeof(float), kBatchBlockBytes);
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
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    std::size_t k = 0;
    for (; k + 8 <= d; k += 8) {
      const __m256 x = _mm256_loadu_ps(q + k);
      for (int r = 0; r < R; ++r) {
        const __m256 b =
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bp + r * d + k)));
        acc[r] = _mm256_fmadd_ps(x, b, acc[r]);
      }
    }
    float res[R];
    reduce_ps<R>(acc, res);
    for (int r = 0; r < R; ++r) {
      for (std::size_t t = k; t < d; ++t) res[r] += q[t] * _cvtsh_ss(bp[r * d + t]);
      out[j * n + i + r] = res[r];
    }
  }
};

// Rows in address order, as F32RowsInOrder.
struct F16RowsInOrder {
  const float* q;
  const std::uint16_t* db;
  std::size_t n, d;
  float* out;

  static __m256 widen(const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }

  float row(const std::uint16_t* bp) const {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    std::size_t k = 0;
    for (; k + 32 <= d; k += 32) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + k), widen(bp + k), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + k + 8), widen(bp + k + 8), a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + k + 16), widen(bp + k + 16), a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + k + 24), widen(bp + k + 24), a3);
    }
    for (; k + 8 <= d; k += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + k), widen(bp + k), a0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; k < d; ++k) s += q[k] * _cvtsh_ss(bp[k]);
    return s;
  }

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    for (int r = 0; r < R; ++r) out[j * n + i + r] = row(db + (i + r) * d);
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

// ---- int8 -------------------------------------------------------------------------
// Queries are widened to int16 once; each 16-byte database chunk is widened once
// per tile and multiplied with vpmaddwd (exact: |q * x| <= 127 * 127).

struct I8Tile {
  const std::int16_t* q16;  // nq x d, widened queries
  const std::int8_t* q;
  const std::int8_t* db;
  std::size_t n, d;
  std::int32_t* out;

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    const std::int16_t* qp = q16 + j * d;
    const std::int8_t* bp = db + i * d;
    __m256i acc[Q * R];
    for (int t = 0; t < Q * R; ++t) acc[t] = _mm256_setzero_si256();
    std::size_t k = 0;
    for (; k + 16 <= d; k += 16) {
      __m256i b[R];
      for (int r = 0; r < R; ++r) {
        b[r] =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bp + r * d + k)));
      }
      for (int a = 0; a < Q; ++a) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qp + a * d + k));
        for (int r = 0; r < R; ++r) {
          acc[a * R + r] = _mm256_add_epi32(acc[a * R + r], _mm256_madd_epi16(x, b[r]));
        }
      }
    }
    std::int32_t res[Q * R];
    reduce_epi32<Q * R>(acc, res);
    for (int a = 0; a < Q; ++a) {
      const std::int8_t* qa = q + (j + a) * d;
      for (int r = 0; r < R; ++r) {
        std::int32_t s = res[a * R + r];
        for (std::size_t t = k; t < d; ++t) s += std::int32_t{qa[t]} * bp[r * d + t];
        out[(j + a) * n + i + r] = s;
      }
    }
  }
};

// Single query: vpmaddubsw on |q| and sign(q) * x (pair sums <= 2 * 127^2 fit int16
// without saturation), then vpmaddwd by ones: 32 bytes per row in four instructions.
struct I8SignTile {
  const std::int8_t* q;
  const std::int8_t* db;
  std::size_t n, d;
  std::int32_t* out;

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    const std::int8_t* bp = db + i * d;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
    std::size_t k = 0;
    for (; k + 32 <= d; k += 32) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + k));
      const __m256i ax = _mm256_abs_epi8(x);
      for (int r = 0; r < R; ++r) {
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + r * d + k));
        const __m256i p = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(b, x));
        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(p, ones));
      }
    }
    std::int32_t res[R];
    reduce_epi32<R>(acc, res);
    for (int r = 0; r < R; ++r) {
      for (std::size_t t = k; t < d; ++t) res[r] += std::int32_t{q[t]} * bp[r * d + t];
      out[j * n + i + r] = res[r];
    }
  }
};

std::vector<std::int16_t> widen(const std::int8_t* q, std::size_t count) {
  return std::vector<std::int16_t>(q, q + count);
}

// Rows in address order with the same vpmaddubsw arithmetic as I8SignTile: two partial
// sums per row, four rows per reduction.
struct I8SignRowsInOrder {
  const std::int8_t* q;
  const std::int8_t* db;
  std::size_t n, d;
  std::int32_t* out;

  static __m256i chunk(const std::int8_t* q, const std::int8_t* b) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
  }

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    __m256i acc[R];
    std::size_t k = 0;
    for (int r = 0; r < R; ++r) {
      const std::int8_t* bp = db + (i + r) * d;
      __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
      for (k = 0; k + 64 <= d; k += 64) {
        a0 = _mm256_add_epi32(a0, chunk(q + k, bp + k));
        a1 = _mm256_add_epi32(a1, chunk(q + k + 32, bp + k + 32));
      }
      if (k + 32 <= d) {
        a0 = _mm256_add_epi32(a0, chunk(q + k, bp + k));
        k += 32;
      }
      acc[r] = _mm256_add_epi32(a0, a1);
    }
    std::int32_t res[R];
    reduce_epi32<R>(acc, res);
    for (int r = 0; r < R; ++r) {
      const std::int8_t* bp = db + (i + r) * d;
      for (std::size_t t = k; t < d; ++t) res[r] += std::int32_t{q[t]} * bp[t];
      out[j * n + i + r] = res[r];
    }
  }
};

void dot_i8(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
            std::int32_t* out) {
  run_tiled<I8SignRowsInOrder, 1, 4>(I8SignRowsInOrder{q, db, n, d, out}, 1, n, d, 0);
}

void dot_i8_prefetch(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
                     std::int32_t* out) {
  run_prefetched<I8SignRowsInOrder, 4>(I8SignRowsInOrder{q, db, n, d, out}, db, n, d);
}

void dot_i8_interleaved(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
                        std::int32_t* out) {
  run_tiled<I8SignTile, 1, 4>(I8SignTile{q, db, n, d, out}, 1, n, d, 0);
}

void dot_i8_batch(const std::int8_t* q, std::size_t nq, const std::int8_t* db, std::size_t n,
                  std::size_t d, std::int32_t* out) {
  const std::vector<std::int16_t> q16 = widen(q, nq * d);
  // 3 queries x 3 rows: 9 accumulators + 3 rows + 1 query + the vpmaddwd result fit the
  // 16 ymm registers. The 4 x 3 tile (12 + 3 + 1 + 1 = 17) spilled two accumulators to the
  // stack in the inner loop (a third of the samples on spill loads and stores): 3 x 3 is
  // 1.3-1.9x faster for 100 queries at D = 256-1024 on Zen 3.
  run_tiled<I8Tile, 3, 3>(I8Tile{q16.data(), q, db, n, d, out}, nq, n, d, kBatchBlockBytes);
}

// ---- hamming ----------------------------------------------------------------------

inline std::uint64_t load_u64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

struct HammingTile {
  const std::uint8_t* q;
  const std::uint8_t* db;
  std::size_t n, nbytes;
  std::uint32_t* out;

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    const std::uint8_t* bp = db + i * nbytes;
    std::uint64_t acc[R] = {};
    std::size_t k = 0;
    for (; k + 8 <= nbytes; k += 8) {
      const std::uint64_t x = load_u64(q + k);
      for (int r = 0; r < R; ++r) acc[r] += _mm_popcnt_u64(x ^ load_u64(bp + r * nbytes + k));
    }
    for (; k < nbytes; ++k) {
      for (int r = 0; r < R; ++r) acc[r] += _mm_popcnt_u32(q[k] ^ bp[r * nbytes + k]);
    }
    for (int r = 0; r < R; ++r) out[j * n + i + r] = static_cast<std::uint32_t>(acc[r]);
  }
};

// Codes of 32 * c bytes (c <= 31), four rows per step: per-byte popcounts by nibble lookup
// (vpshufb) summed over the row's chunks (at most 8 * 31 < 256 per byte), vpsadbw to
// four 64-bit partial sums per row, then one transpose to four row sums. About 12 vector
// instructions per 32-byte row against 17 scalar ones for hamming_words<4>: 100k rows
// of 32 bytes took 0.10 ms instead of 0.185 ms on Zen 3.
inline __m256i byte_popcounts(__m256i v) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                       1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_and_si256(v, nibble);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

constexpr std::size_t kMaxChunks = 31;

// C: chunks known at compile time (1, 2, 4: 256-, 512- and 1024-bit codes), else 0.
template <std::size_t C>
void hamming_rows4_chunks(const std::uint8_t* q, const std::uint8_t* db, std::size_t runtime,
                          std::uint32_t* out) {
  const std::size_t chunks = C > 0 ? C : runtime;
  const __m256i zero = _mm256_setzero_si256();
  const std::size_t nbytes = 32 * chunks;
  __m256i s[4];  // s[r]: four 64-bit partial counts of row r (each fits 32 bits)
  for (int r = 0; r < 4; ++r) {
    const std::uint8_t* row = db + nbytes * static_cast<std::size_t>(r);
    __m256i counts = zero;
    for (std::size_t c = 0; c < chunks; ++c) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * c));
      const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * c));
      counts = _mm256_add_epi8(counts, byte_popcounts(_mm256_xor_si256(qv, x)));
    }
    s[r] = _mm256_sad_epu8(counts, zero);
  }
  // 32-bit lanes (r0, r1) and (r2, r3) per 64-bit slot, then add the four slots per row.
  const __m256i y = _mm256_or_si256(s[0], _mm256_slli_epi64(s[1], 32));
  const __m256i z = _mm256_or_si256(s[2], _mm256_slli_epi64(s[3], 32));
  const __m256i w = _mm256_add_epi32(_mm256_unpacklo_epi64(y, z), _mm256_unpackhi_epi64(y, z));
  const __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), sums);
}

void hamming(const std::uint8_t* q, const std::uint8_t* db, std::size_t n, std::size_t nbytes,
             std::uint32_t* out) {
  std::size_t i = 0;
  if (nbytes % 32 == 0 && nbytes / 32 <= kMaxChunks) {
    const std::size_t chunks = nbytes / 32;
    for (; i + 4 <= n; i += 4) {
      const std::uint8_t* rows = db + nbytes * i;
      switch (chunks) {
        case 1:
          hamming_rows4_chunks<1>(q, rows, chunks, out + i);
          break;
        case 2:
          hamming_rows4_chunks<2>(q, rows, chunks, out + i);
          break;
        case 4:
          hamming_rows4_chunks<4>(q, rows, chunks, out + i);
          break;
        default:
          hamming_rows4_chunks<0>(q, rows, chunks, out + i);
      }
    }
    db += nbytes * i;
    out += i;
    n -= i;
  }
  if (hamming_short_codes(q, db, n, nbytes, out)) return;
  run_tiled<HammingTile, 1, 4>(HammingTile{q, db, n, nbytes, out}, 1, n, nbytes, 0);
}

void f16_to_f32(const std::uint16_t* src, std::size_t count, float* dst) {
  std::size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < count; ++i) dst[i] = half_to_float(src[i]);
}

}  // namespace

// Two sub-quantizers per step: their 16-byte code groups are adjacent in a block, as are
// their 16-entry tables, so one 256-bit load of each puts sub-quantizer j in the low lane
// and j + 1 in the high lane, and vpshufb (a per-lane 16-entry lookup) reads both.
// The uint8 lookups are summed without widening them first: read as uint16 words, a word
// adds its even place plus 256 x its odd place, and the word shifted right by 8 is the odd
// place alone. Two such sums per half give both places exactly (even = all - odd << 8,
// modulo 2^16, and every true sum is below 2^16 for m <= 256). That is 11 ops per step
// instead of 13, and 2 shuffles instead of 6 (the unpacks were shuffles too, and the
// shuffle port bounds the scan): 10-15% faster in cache and ~6% at 1M places on the
// Xeon guest of docs/pq.md. The two lanes hold the same places and are added once at the
// end of the block, where the even and odd words are interleaved back into place order.

void pq4_scan_avx2(const std::uint8_t* lut, std::size_t m, const std::uint8_t* codes,
                   std::size_t nblocks, std::uint16_t* out) {
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  for (std::size_t b = 0; b < nblocks; ++b) {
    const std::uint8_t* block = codes + b * m * 16;
    // Low-nibble places 0..15 and high-nibble places 16..31: word sums and odd places.
    __m256i lo_words = zero, lo_odd = zero, hi_words = zero, hi_odd = zero;
    for (std::size_t j = 0; j < m; j += 2) {
      // One software prefetch per 64-byte line, kPq4PrefetchBytes ahead: the hardware
      // prefetchers alone left the scan waiting on its code loads (docs/pq.md).
      if ((j & 2) == 0) {
        _mm_prefetch(reinterpret_cast<const char*>(block + j * 16 + kPq4PrefetchBytes),
                     _MM_HINT_T0);
      }
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + j * 16));
      const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + j * 16));
      const __m256i lo = _mm256_shuffle_epi8(t, _mm256_and_si256(c, nibble));
      const __m256i hi = _mm256_shuffle_epi8(t, _mm256_and_si256(_mm256_srli_epi16(c, 4), nibble));
      lo_words = _mm256_add_epi16(lo_words, lo);
      lo_odd = _mm256_add_epi16(lo_odd, _mm256_srli_epi16(lo, 8));
      hi_words = _mm256_add_epi16(hi_words, hi);
      hi_odd = _mm256_add_epi16(hi_odd, _mm256_srli_epi16(hi, 8));
    }
    auto lanes = [](__m256i a) {
      return _mm_add_epi16(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    };
    const __m128i lo_e = lanes(_mm256_sub_epi16(lo_words, _mm256_slli_epi16(lo_odd, 8)));
    const __m128i hi_e = lanes(_mm256_sub_epi16(hi_words, _mm256_slli_epi16(hi_odd, 8)));
    const __m128i lo_o = lanes(lo_odd), hi_o = lanes(hi_odd);
    auto* o = reinterpret_cast<__m128i*>(out + b * 32);
    _mm_storeu_si128(o, _mm_unpacklo_epi16(lo_e, lo_o));      // places 0..7
    _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(lo_e, lo_o));  // places 8..15
    _mm_storeu_si128(o + 2, _mm_unpacklo_epi16(hi_e, hi_o));  // places 16..23
    _mm_storeu_si128(o + 3, _mm_unpackhi_epi16(hi_e, hi_o));  // places 24..31
  }
}

const KernelTable& avx2_kernels(RowOrder order) {
  static const KernelTable sequential{dot_f32,       dot_f16,      dot_i8,     hamming,
                                      dot_f32_batch, dot_i8_batch, f16_to_f32, pq4_scan_avx2};
  static const KernelTable interleaved{
      dot_f32_interleaved, dot_f16_interleaved, dot_i8_interleaved, hamming,
      dot_f32_batch,       dot_i8_batch,        f16_to_f32,         pq4_scan_avx2};
  static const KernelTable prefetch{dot_f32_prefetch, dot_f16_prefetch, dot_i8_prefetch,
                                    hamming,          dot_f32_batch,    dot_i8_batch,
                                    f16_to_f32,       pq4_scan_avx2};
  if (order == RowOrder::SequentialPrefetch) return prefetch;
  return order == RowOrder::Interleaved ? interleaved : sequential;
}

}  // namespace vpr
