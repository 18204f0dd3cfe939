// armv8.2-a+dotprod kernels (Raspberry Pi 5 / Cortex-A76). Only the int8 kernels
// differ from the baseline NEON level: SDOT adds four int8 products per int32 lane.
// This file alone is compiled with -march=armv8.2-a+dotprod; the dispatcher uses
// it only when HWCAP_ASIMDDP is set.
#include <arm_neon.h>

#include "neon_common.hpp"
#include "tiling.hpp"
#include "vpr/kernels.hpp"

namespace vpr {
namespace {

template <int N>
inline void reduce(const int32x4_t* acc, std::int32_t* res) {
  int t = 0;
  for (; t + 4 <= N; t += 4) {
    vst1q_s32(res + t,
              vpaddq_s32(vpaddq_s32(acc[t], acc[t + 1]), vpaddq_s32(acc[t + 2], acc[t + 3])));
  }
  for (; t < N; ++t) res[t] = vaddvq_s32(acc[t]);
}

struct I8DotTile {
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
        for (int r = 0; r < R; ++r) acc[a * R + r] = vdotq_s32(acc[a * R + r], x, b[r]);
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

// Rows in address order (RowOrder::Sequential): two SDOT chains per row, four rows per
// reduction.
struct I8DotRowsInOrder {
  const std::int8_t* q;
  const std::int8_t* db;
  std::size_t n, d;
  std::int32_t* out;

  template <int Q, int R>
  void tile(std::size_t j, std::size_t i) const {
    static_assert(Q == 1, "single query only");
    int32x4_t acc[R];
    std::size_t k = 0;
    for (int r = 0; r < R; ++r) {
      const std::int8_t* bp = db + (i + r) * d;
      int32x4_t a0 = vdupq_n_s32(0), a1 = a0;
      for (k = 0; k + 32 <= d; k += 32) {
        a0 = vdotq_s32(a0, vld1q_s8(q + k), vld1q_s8(bp + k));
        a1 = vdotq_s32(a1, vld1q_s8(q + k + 16), vld1q_s8(bp + k + 16));
      }
      if (k + 16 <= d) {
        a0 = vdotq_s32(a0, vld1q_s8(q + k), vld1q_s8(bp + k));
        k += 16;
      }
      acc[r] = vaddq_s32(a0, a1);
    }
    std::int32_t res[R];
    reduce<R>(acc, res);
    for (int r = 0; r < R; ++r) {
      const std::int8_t* bp = db + (i + r) * d;
      for (std::size_t t = k; t < d; ++t) res[r] += std::int32_t{q[t]} * bp[t];
      out[j * n + i + r] = res[r];
    }
  }
};

void dot_i8(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
            std::int32_t* out) {
  run_tiled<I8DotRowsInOrder, 1, 4>(I8DotRowsInOrder{q, db, n, d, out}, 1, n, d, 0);
}

void dot_i8_prefetch(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
                     std::int32_t* out) {
  run_prefetched<I8DotRowsInOrder, 4>(I8DotRowsInOrder{q, db, n, d, out}, db, n, d);
}

void dot_i8_interleaved(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
                        std::int32_t* out) {
  run_tiled<I8DotTile, 1, 8>(I8DotTile{q, db, n, d, out}, 1, n, d, 0);
}

void dot_i8_batch(const std::int8_t* q, std::size_t nq, const std::int8_t* db, std::size_t n,
                  std::size_t d, std::int32_t* out) {
  // 6 queries x 4 rows: 24 accumulators + 4 rows + 1 query of the 32 registers.
  run_tiled<I8DotTile, 6, 4>(I8DotTile{q, db, n, d, out}, nq, n, d, kBatchBlockBytes);
}

}  // namespace

const KernelTable& neon_dotprod_kernels(RowOrder order) {
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
