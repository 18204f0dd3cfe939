// Baseline aarch64 NEON kernels (armv8-a: Raspberry Pi 4 / Cortex-A72). Advanced
// SIMD is mandatory on aarch64, so this level needs no runtime check.
#include <arm_neon.h>

#include "neon_common.hpp"
#include "tiling.hpp"
#include "vpr/kernels.hpp"

namespace vpr {
namespace {

// Four sums from four accumulators with one pairwise-add tree.
inline float32x4_t hsum4(float32x4_t a, float32x4_t b, float32x4_t c, float32x4_t d) {
  return vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d));
}

inline int32x4_t hsum4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
  return vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d));
}

template <int N>
inline void reduce(const float32x4_t* acc, float* res) {
  int t = 0;
  for (; t + 4 <= N; t += 4) vst1q_f32(res + t, hsum4(acc[t], acc[t + 1], acc[t + 2], acc[t + 3]));
  for (; t < N; ++t) res[t] = vaddvq_f32(acc[t]);
}

template <int N>
inline void reduce(const int32x4_t* acc, std::int32_t* res) {
  int t = 0;
  for (; t + 4 <= N; t += 4) vst1q_s32(res + t, hsum4(acc[t], acc[t + 1], acc[t + 2], acc[t + 3]));
  for (; t < N; ++t) res[t] = vaddvq_s32(acc[t]);
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
    float32x4_t acc[Q * R];
    for (int t = 0; t < Q * R; ++t) acc[t] = vdupq_n_f32(0.0f);
    std::size_t k = 0;
    for (; k + 4 <= d; k += 4) {
      float32x4_t b[R];
      for (int r = 0; r < R; ++r) b[r] = vld1q_f32(bp + r * d + k);
      for (int a = 0; a < Q; ++a) {
        const float32x4_t x = vld1q_f32(qp + a * d + k);
        for (int r = 0; r < R; ++r) acc[a * R + r] = vfmaq_f32(acc[a * R + r], x, b[r]);
      }
    }
    float res[Q * R];
    reduce<Q * R>(acc, res);
    for (int a = 0; a < Q; ++a) {
      for (int r = 0; r < R; ++r) {
        float s = res[a * R + r];
        for (std::size_t t = k; t < d; ++t) s += qp[a * d + t] * bp[r * d + t];
        out[(j + a) * n + i + r] = s;
      }
    }
  }
};

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
    float32x4_t acc[2 * R];
    for (int t = 0; t < 2 * R; ++t) acc[t] = vdupq_n_f32(0.0f);
    std::size_t k = 0;
    // FCVTL (half -> float) is part of baseline armv8-a Advanced SIMD.
    for (; k + 8 <= d; k += 8) {
      const float32x4_t x0 = vld1q_f32(q + k);
      const float32x4_t x1 = vld1q_f32(q + k + 4);
      for (int r = 0; r < R; ++r) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(bp + r * d + k));
        acc[2 * r] = vfmaq_f32(acc[2 * r], x0, vcvt_f32_f16(vget_low_f16(h)));
        acc[2 * r + 1] = vfmaq_f32(acc[2 * r + 1], x1, vcvt_high_f32_f16(h));
      }
    }
    for (int r = 0; r < R; ++r) {
      float s = vaddvq_f32(vaddq_f32(acc[2 * r], acc[2 * r + 1]));
      for (std::size_t t = k; t < d; ++t) s += q[t] * half_to_float(bp[r * d + t]);
      out[j * n + i + r] = s;
    }
  }
};

// Rows in address order (RowOrder::Sequential): each row start to end before the next,
// one sequential stream for the prefetchers; four partial sums per row cover the FMA
// latency (7 cycles on Cortex-A72, 4 on A76) and four rows share one reduction.
struct F32RowsInOrder {
  const float* q;
  const float* db;
  std::size_t n, d;
  float* out;

  float32x4_t row(const float* bp, float& tail) const {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    std::size_t k = 0;
    for (; k + 16 <= d; k += 16) {
      a0 = vfmaq_f32(a0, vld1q_f32(q + k), vld1q_f32(bp + k));
      a1 = vfmaq_f32(a1, vld1q_f32(q + k + 4), vld1q_f32(bp + k + 4));
      a2 = vfmaq_f32(a2, vld1q_f32(q + k + 8), vld1q_f32(bp + k + 8));
      a3 = vfmaq_f32(a3, vld1q_f32(q + k + 12), vld1q_f32(bp + k + 12));
    }
    for (; k + 4 <= d; k += 4) a0 = vfmaq_f32(a0, vld1q_f32(q + k), vld1q_f32(bp + k));
    tail = 0.0f;
    for (; k < d; ++k) tail += q[k] * bp[k];
    return vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3));
  }

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    float32x4_t acc[R];
    float tails[R];
    for (int r = 0; r < R; ++r) acc[r] = row(db + (i + r) * d, tails[r]);
    float res[R];
    reduce<R>(acc, res);
    for (int r = 0; r < R; ++r) out[j * n + i + r] = res[r] + tails[r];
  }
};

struct F16RowsInOrder {
  const float* q;
  const std::uint16_t* db;
  std::size_t n, d;
  float* out;

  float row(const std::uint16_t* bp) const {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    std::size_t k = 0;
    for (; k + 16 <= d; k += 16) {
      const float16x8_t h0 = vreinterpretq_f16_u16(vld1q_u16(bp + k));
      const float16x8_t h1 = vreinterpretq_f16_u16(vld1q_u16(bp + k + 8));
      a0 = vfmaq_f32(a0, vld1q_f32(q + k), vcvt_f32_f16(vget_low_f16(h0)));
      a1 = vfmaq_f32(a1, vld1q_f32(q + k + 4), vcvt_high_f32_f16(h0));
      a2 = vfmaq_f32(a2, vld1q_f32(q + k + 8), vcvt_f32_f16(vget_low_f16(h1)));
      a3 = vfmaq_f32(a3, vld1q_f32(q + k + 12), vcvt_high_f32_f16(h1));
    }
    for (; k + 8 <= d; k += 8) {
      const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(bp + k));
      a0 = vfmaq_f32(a0, vld1q_f32(q + k), vcvt_f32_f16(vget_low_f16(h)));
      a1 = vfmaq_f32(a1, vld1q_f32(q + k + 4), vcvt_high_f32_f16(h));
    }
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; k < d; ++k) s += q[k] * half_to_float(bp[k]);
    return s;
  }

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    for (int r = 0; r < R; ++r) out[j * n + i + r] = row(db + (i + r) * d);
  }
};

// ---- int8 -------------------------------------------------------------------------
// vmull_s8 + vmlal_high_s8 add two products per int16 lane (|sum| <= 2 * 127^2, no
// overflow for values in [-127, 127]); vpadalq_s16 widens into int32 accumulators.

struct I8Tile {
  const std::int8_t* q;
  const std::int8_t* db;
  std::size_t n, d;
  std::int32_t* out;

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    const std::int8_t* qp = q + j * d;
    const std::int8_t* bp = db + i * d;
    int32x4_t acc[Q * R];
    for (int t = 0; t < Q * R; ++t) acc[t] = vdupq_n_s32(0);
    std::size_t k = 0;
    for (; k + 16 <= d; k += 16) {
      int8x16_t b[R];
      for (int r = 0; r < R; ++r) b[r] = vld1q_s8(bp + r * d + k);
      for (int a = 0; a < Q; ++a) {
        const int8x16_t x = vld1q_s8(qp + a * d + k);
        for (int r = 0; r < R; ++r) {
          int16x8_t p = vmull_s8(vget_low_s8(x), vget_low_s8(b[r]));
          p = vmlal_high_s8(p, x, b[r]);
          acc[a * R + r] = vpadalq_s16(acc[a * R + r], p);
        }
      }
    }
    std::int32_t res[Q * R];
    reduce<Q * R>(acc, res);
    for (int a = 0; a < Q; ++a) {
      for (int r = 0; r < R; ++r) {
        std::int32_t s = res[a * R + r];
        for (std::size_t t = k; t < d; ++t) s += std::int32_t{qp[a * d + t]} * bp[r * d + t];
        out[(j + a) * n + i + r] = s;
      }
    }
  }
};

// Rows in address order with I8Tile's arithmetic: two partial sums per row.
struct I8RowsInOrder {
  const std::int8_t* q;
  const std::int8_t* db;
  std::size_t n, d;
  std::int32_t* out;

  static int32x4_t chunk(int32x4_t acc, int8x16_t x, int8x16_t b) {
    int16x8_t p = vmull_s8(vget_low_s8(x), vget_low_s8(b));
    p = vmlal_high_s8(p, x, b);
    return vpadalq_s16(acc, p);
  }

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    for (int r = 0; r < R; ++r) {
      const std::int8_t* bp = db + (i + r) * d;
      int32x4_t a0 = vdupq_n_s32(0), a1 = a0;
      std::size_t k = 0;
      for (; k + 32 <= d; k += 32) {
        a0 = chunk(a0, vld1q_s8(q + k), vld1q_s8(bp + k));
        a1 = chunk(a1, vld1q_s8(q + k + 16), vld1q_s8(bp + k + 16));
      }
      if (k + 16 <= d) {
        a0 = chunk(a0, vld1q_s8(q + k), vld1q_s8(bp + k));
        k += 16;
      }
      std::int32_t s = vaddvq_s32(vaddq_s32(a0, a1));
      for (; k < d; ++k) s += std::int32_t{q[k]} * bp[k];
      out[j * n + i + r] = s;
    }
  }
};

void dot_i8(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
            std::int32_t* out) {
  run_tiled<I8RowsInOrder, 1, 4>(I8RowsInOrder{q, db, n, d, out}, 1, n, d, 0);
}

void dot_i8_prefetch(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
                     std::int32_t* out) {
  run_prefetched<I8RowsInOrder, 4>(I8RowsInOrder{q, db, n, d, out}, db, n, d);
}

void dot_i8_interleaved(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
                        std::int32_t* out) {
  run_tiled<I8Tile, 1, 4>(I8Tile{q, db, n, d, out}, 1, n, d, 0);
}

void dot_i8_batch(const std::int8_t* q, std::size_t nq, const std::int8_t* db, std::size_t n,
                  std::size_t d, std::int32_t* out) {
  // 4 x 4 tile: 16 accumulators + 4 rows + temporaries within the 32 vector registers.
  run_tiled<I8Tile, 4, 4>(I8Tile{q, db, n, d, out}, nq, n, d, kBatchBlockBytes);
}

// ---- hamming ----------------------------------------------------------------------

struct HammingTile {
  const std::uint8_t* q;
  const std::uint8_t* db;
  std::size_t n, nbytes;
  std::uint32_t* out;

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    const std::uint8_t* bp = db + i * nbytes;
    std::uint32_t total[R] = {};
    std::size_t k = 0;
    while (k + 16 <= nbytes) {
      // uint16 lanes gain at most 16 per chunk: flush to 32 bits every 2048 chunks.
      const std::size_t stop = k + 16 * std::min<std::size_t>(2048, (nbytes - k) / 16);
      uint16x8_t acc[R];
      for (int r = 0; r < R; ++r) acc[r] = vdupq_n_u16(0);
      for (; k < stop; k += 16) {
        const uint8x16_t x = vld1q_u8(q + k);
        for (int r = 0; r < R; ++r) {
          acc[r] = vpadalq_u8(acc[r], vcntq_u8(veorq_u8(x, vld1q_u8(bp + r * nbytes + k))));
        }
      }
      for (int r = 0; r < R; ++r) total[r] += vaddlvq_u16(acc[r]);
    }
    for (; k < nbytes; ++k) {
      for (int r = 0; r < R; ++r) {
        total[r] += static_cast<std::uint32_t>(__builtin_popcount(q[k] ^ bp[r * nbytes + k]));
      }
    }
    for (int r = 0; r < R; ++r) out[j * n + i + r] = total[r];
  }
};

}  // namespace

namespace neon {

void dot_f32(const float* q, const float* db, std::size_t n, std::size_t d, float* out) {
  run_tiled<F32RowsInOrder, 1, 4>(F32RowsInOrder{q, db, n, d, out}, 1, n, d * sizeof(float), 0);
}

void dot_f32_prefetch(const float* q, const float* db, std::size_t n, std::size_t d, float* out) {
  run_prefetched<F32RowsInOrder, 4>(F32RowsInOrder{q, db, n, d, out}, db, n, d * sizeof(float));
}

void dot_f32_interleaved(const float* q, const float* db, std::size_t n, std::size_t d,
                         float* out) {
  run_tiled<F32Tile, 1, 8>(F32Tile{q, db, n, d, out}, 1, n, d * sizeof(float), 0);
}

void dot_f16(const float* q, const std::uint16_t* db, std::size_t n, std::size_t d, float* out) {
  run_tiled<F16RowsInOrder, 1, 4>(F16RowsInOrder{q, db, n, d, out}, 1, n, d * 2, 0);
}

void dot_f16_prefetch(const float* q, const std::uint16_t* db, std::size_t n, std::size_t d,
                      float* out) {
  run_prefetched<F16RowsInOrder, 4>(F16RowsInOrder{q, db, n, d, out}, db, n, d * 2);
}

void dot_f16_interleaved(const float* q, const std::uint16_t* db, std::size_t n, std::size_t d,
                         float* out) {
  run_tiled<F16Tile, 1, 4>(F16Tile{q, db, n, d, out}, 1, n, d * 2, 0);
}

void hamming(const std::uint8_t* q, const std::uint8_t* db, std::size_t n, std::size_t nbytes,
             std::uint32_t* out) {
  run_tiled<HammingTile, 1, 4>(HammingTile{q, db, n, nbytes, out}, 1, n, nbytes, 0);
}

void dot_f32_batch(const float* q, std::size_t nq, const float* db, std::size_t n, std::size_t d,
                   float* out) {
  // 6 queries x 4 rows: 24 accumulators + 4 rows + 1 query of the 32 registers, enough
  // independent FMAs to cover the A72's 7-cycle FMA latency.
  run_tiled<F32Tile, 6, 4>(F32Tile{q, db, n, d, out}, nq, n, d * sizeof(float), kBatchBlockBytes);
}

void f16_to_f32(const std::uint16_t* src, std::size_t count, float* dst) {
  std::size_t i = 0;
  for (; i + 4 <= count; i += 4) {
    vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
  }
  for (; i < count; ++i) dst[i] = half_to_float(src[i]);
}

}  // namespace neon

// One sub-quantizer per step: tbl (vqtbl1q_u8) looks its 16-entry table up for the low
// nibbles (places 0..15) and the high nibbles (places 16..31); the uint8 lookups widen into
// uint16 sums.
void pq4_scan_neon(const std::uint8_t* lut, std::size_t m, const std::uint8_t* codes,
                   std::size_t nblocks, std::uint16_t* out) {
  const uint8x16_t nibble = vdupq_n_u8(0x0f);
  for (std::size_t b = 0; b < nblocks; ++b) {
    const std::uint8_t* block = codes + b * m * 16;
    uint16x8_t acc0 = vdupq_n_u16(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    for (std::size_t j = 0; j < m; ++j) {
      const uint8x16_t c = vld1q_u8(block + j * 16);
      const uint8x16_t t = vld1q_u8(lut + j * 16);
      const uint8x16_t lo = vqtbl1q_u8(t, vandq_u8(c, nibble));
      const uint8x16_t hi = vqtbl1q_u8(t, vshrq_n_u8(c, 4));
      acc0 = vaddw_u8(acc0, vget_low_u8(lo));
      acc1 = vaddw_high_u8(acc1, lo);
      acc2 = vaddw_u8(acc2, vget_low_u8(hi));
      acc3 = vaddw_high_u8(acc3, hi);
    }
    std::uint16_t* o = out + b * 32;
    vst1q_u16(o, acc0);
    vst1q_u16(o + 8, acc1);
    vst1q_u16(o + 16, acc2);
    vst1q_u16(o + 24, acc3);
  }
}

const KernelTable& neon_kernels(RowOrder order) {
  static const KernelTable sequential{neon::dot_f32,    neon::dot_f16,       dot_i8,
                                      neon::hamming,    neon::dot_f32_batch, dot_i8_batch,
                                      neon::f16_to_f32, pq4_scan_neon};
  static const KernelTable interleaved{neon::dot_f32_interleaved, neon::dot_f16_interleaved,
                                       dot_i8_interleaved,        neon::hamming,
                                       neon::dot_f32_batch,       dot_i8_batch,
                                       neon::f16_to_f32,          pq4_scan_neon};
  static const KernelTable prefetch{neon::dot_f32_prefetch, neon::dot_f16_prefetch, dot_i8_prefetch,
                                    neon::hamming,          neon::dot_f32_batch,    dot_i8_batch,
                                    neon::f16_to_f32,       pq4_scan_neon};
  if (order == RowOrder::SequentialPrefetch) return prefetch;
  return order == RowOrder::Interleaved ? interleaved : sequential;
}

}  // namespace vpr
