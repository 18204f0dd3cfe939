// Controlled experiment behind docs/matching_speed.md: the same int8 and float32 dot
// products over a DRAM-sized database, differing only in how they walk the rows
// (interleaved register tiles of 1, 4 or 8 rows vs one row after another), with and
// without a software prefetch, at a chosen misalignment. Variants run interleaved in
// rounds so they share the machine's noise; the shipped kernels of every SIMD level run
// beside them, and plain reads of the same bytes with 32- and 64-byte loads (the latter
// found why AVX-512 float32 rows streamed slowly on a Xeon: docs/matching_speed.md).
// x86_64 + AVX2 (the lab variants are AVX2; the 64-byte read runs where AVX-512 does).
// Build and run:
//
//   cmake --build build/host --target vpr_core
//   g++ -O2 -mavx2 -mfma -std=c++17 -Icsrc/include -DVPR_HAVE_AVX2 -DVPR_HAVE_AVX512 \
//       benchmarks/row_order_lab.cpp build/host/csrc/libvpr_core.a -lpthread -o /tmp/lab
//   /tmp/lab 100000 1024 21 0 huge  # rows, dimension, rounds, misalignment in bytes,
//                                   # pages: huge (madvise, as numpy) or small (4 KB)
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "vpr/kernels.hpp"
#include "vpr/simd.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::int32_t hsum_epi32(__m256i a) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

float hsum_ps(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void prefetch_ahead(const void* tile, std::size_t bytes, std::size_t ahead) {
  if (ahead == 0) return;
  const char* p = static_cast<const char*>(tile) + ahead;
  for (std::size_t o = 0; o < bytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
}

// R rows advanced together, 32 bytes at a time (the old kernels' pattern).
template <int R>
void i8_tiled(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
              std::int32_t* out, std::size_t ahead) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (std::size_t i = 0; i + R <= n; i += R) {
    const std::int8_t* bp = db + i * d;
    prefetch_ahead(bp, R * d, ahead);
    __m256i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
    for (std::size_t k = 0; k + 32 <= d; k += 32) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + k));
      const __m256i ax = _mm256_abs_epi8(x);
      for (int r = 0; r < R; ++r) {
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + r * d + k));
        acc[r] = _mm256_add_epi32(
            acc[r], _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(b, x)), ones));
      }
    }
    for (int r = 0; r < R; ++r) out[i + r] = hsum_epi32(acc[r]);
  }
}

// One row after another (addresses in order), two partial sums per row.
void i8_in_order(const std::int8_t* q, const std::int8_t* db, std::size_t n, std::size_t d,
                 std::int32_t* out, std::size_t ahead) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (std::size_t i = 0; i + 4 <= n; i += 4) {
    prefetch_ahead(db + i * d, 4 * d, ahead);
    for (int r = 0; r < 4; ++r) {
      const std::int8_t* row = db + (i + r) * d;
      __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
      for (std::size_t k = 0; k + 64 <= d; k += 64) {
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + k));
        const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + k + 32));
        const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + k));
        const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + k + 32));
        a0 = _mm256_add_epi32(
            a0, _mm256_madd_epi16(
                    _mm256_maddubs_epi16(_mm256_abs_epi8(x0), _mm256_sign_epi8(b0, x0)), ones));
        a1 = _mm256_add_epi32(
            a1, _mm256_madd_epi16(
                    _mm256_maddubs_epi16(_mm256_abs_epi8(x1), _mm256_sign_epi8(b1, x1)), ones));
      }
      out[i + r] = hsum_epi32(_mm256_add_epi32(a0, a1));
    }
  }
}

template <int R>
void f32_tiled(const float* q, const float* db, std::size_t n, std::size_t d, float* out,
               std::size_t ahead) {
  for (std::size_t i = 0; i + R <= n; i += R) {
    const float* bp = db + i * d;
    prefetch_ahead(bp, R * d * 4, ahead);
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (std::size_t k = 0; k + 8 <= d; k += 8) {
      const __m256 x = _mm256_loadu_ps(q + k);
      for (int r = 0; r < R; ++r)
        acc[r] = _mm256_fmadd_ps(x, _mm256_loadu_ps(bp + r * d + k), acc[r]);
    }
    for (int r = 0; r < R; ++r) out[i + r] = hsum_ps(acc[r]);
  }
}

void f32_in_order(const float* q, const float* db, std::size_t n, std::size_t d, float* out,
                  std::size_t ahead) {
  for (std::size_t i = 0; i + 4 <= n; i += 4) {
    prefetch_ahead(db + i * d, 4 * d * 4, ahead);
    for (int r = 0; r < 4; ++r) {
      const float* row = db + (i + r) * d;
      __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
      for (std::size_t k = 0; k + 32 <= d; k += 32) {
        for (int t = 0; t < 4; ++t) {
          a[t] = _mm256_fmadd_ps(_mm256_loadu_ps(q + k + 8 * t), _mm256_loadu_ps(row + k + 8 * t),
                                 a[t]);
        }
      }
      out[i + r] = hsum_ps(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
    }
  }
}

__attribute__((target("avx512f"))) void read_all_zmm(const std::uint8_t* p, std::size_t bytes) {
  __m512i acc = _mm512_setzero_si512();
  for (std::size_t o = 0; o + 64 <= bytes; o += 64) {
    acc = _mm512_xor_si512(acc, _mm512_loadu_si512(p + o));
  }
  volatile long long sink = _mm512_reduce_add_epi64(acc);
  (void)sink;
}

void read_all(const std::uint8_t* p, std::size_t bytes) {
  __m256i acc = _mm256_setzero_si256();
  for (std::size_t o = 0; o + 32 <= bytes; o += 32) {
    acc = _mm256_xor_si256(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + o)));
  }
  volatile int sink = _mm256_extract_epi32(acc, 0);
  (void)sink;
}

struct Variant {
  std::string name;
  std::function<void()> run;
  std::size_t bytes;
  std::vector<double> ms;
};

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  const std::size_t d = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 256;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 15;
  const std::size_t misalign = argc > 4 ? std::strtoul(argv[4], nullptr, 10) : 0;
  const bool huge_pages = argc <= 5 || std::string(argv[5]) != "small";
  const std::size_t i8_bytes = n * d, f32_bytes = n * d * 4;
  const std::size_t huge = std::size_t{1} << 21;
  const std::size_t alloc = (f32_bytes + misalign + 2 * huge) / huge * huge;
  auto* raw = static_cast<std::uint8_t*>(std::aligned_alloc(huge, alloc));
  madvise(raw, alloc, huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);  // numpy asks for huge
  auto* base = raw + misalign;
  auto* floats = reinterpret_cast<float*>(base);
  for (std::size_t i = 0; i < f32_bytes / 4; ++i) floats[i] = static_cast<float>(i % 1000) * 1e-3f;
  const auto* db8 = reinterpret_cast<const std::int8_t*>(base);
  const float* dbf = floats;
  std::vector<std::int8_t> q8(d);
  std::vector<float> qf(d);
  for (std::size_t k = 0; k < d; ++k) {
    q8[k] = static_cast<std::int8_t>(static_cast<int>(k * 13 % 255) - 127);
    qf[k] = static_cast<float>(k) * 1e-3f;
  }
  std::vector<std::int32_t> o8(n);
  std::vector<float> of(n);

  std::vector<Variant> vs;
  vs.push_back(
      {"read f32 bytes, 32-byte loads", [&] { read_all(base, f32_bytes); }, f32_bytes, {}});
  const std::vector<vpr::SimdLevel> levels = vpr::supported_simd_levels();
  if (std::find(levels.begin(), levels.end(), vpr::SimdLevel::Avx512) != levels.end()) {
    vs.push_back(
        {"read f32 bytes, 64-byte loads", [&] { read_all_zmm(base, f32_bytes); }, f32_bytes, {}});
  }
  for (vpr::SimdLevel level : levels) {
    if (level == vpr::SimdLevel::Amx) continue;  // its single-query kernels are avx512's
    for (vpr::RowOrder order : {vpr::RowOrder::Sequential, vpr::RowOrder::SequentialPrefetch,
                                vpr::RowOrder::Interleaved, vpr::RowOrder::SequentialSplitLoads}) {
      // Split loads differ from Sequential only in AVX-512's float32 kernel.
      if (order == vpr::RowOrder::SequentialSplitLoads && level != vpr::SimdLevel::Avx512) continue;
      const vpr::KernelTable* kt = vpr::kernels_for(level, order);
      const std::string tag =
          "core " + vpr::simd_level_name(level) + "/" + vpr::row_order_name(order);
      vs.push_back({tag + " i8",
                    [=, &q8, &o8] { kt->dot_i8(q8.data(), db8, n, d, o8.data()); },
                    i8_bytes,
                    {}});
      vs.push_back({tag + " f32",
                    [=, &qf, &of] { kt->dot_f32(qf.data(), dbf, n, d, of.data()); },
                    f32_bytes,
                    {}});
      if (level == vpr::SimdLevel::Scalar) break;
    }
  }
  for (std::size_t ahead :
       {std::size_t{0}, std::size_t{512}, std::size_t{2048}, std::size_t{4096}}) {
    const std::string pf = " pf" + std::to_string(ahead);
    vs.push_back({"i8 in order" + pf,
                  [=, &q8, &o8] { i8_in_order(q8.data(), db8, n, d, o8.data(), ahead); },
                  i8_bytes,
                  {}});
    vs.push_back({"i8 tile R4" + pf,
                  [=, &q8, &o8] { i8_tiled<4>(q8.data(), db8, n, d, o8.data(), ahead); },
                  i8_bytes,
                  {}});
    vs.push_back({"i8 tile R8" + pf,
                  [=, &q8, &o8] { i8_tiled<8>(q8.data(), db8, n, d, o8.data(), ahead); },
                  i8_bytes,
                  {}});
    vs.push_back({"f32 in order" + pf,
                  [=, &qf, &of] { f32_in_order(qf.data(), dbf, n, d, of.data(), ahead); },
                  f32_bytes,
                  {}});
    vs.push_back({"f32 tile R8" + pf,
                  [=, &qf, &of] { f32_tiled<8>(qf.data(), dbf, n, d, of.data(), ahead); },
                  f32_bytes,
                  {}});
  }
  for (int r = 0; r <= rounds; ++r) {  // round 0 warms up
    for (std::size_t v = 0; v < vs.size(); ++v) {
      Variant& x = vs[(v + static_cast<std::size_t>(r)) % vs.size()];
      const auto t0 = Clock::now();
      x.run();
      if (r > 0)
        x.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
  }
  std::printf("n=%zu d=%zu rounds=%d misalign=%zu pages=%s (median ms, GB/s, min ms)\n", n, d,
              rounds, misalign, huge_pages ? "huge" : "small");
  for (Variant& x : vs) {
    std::sort(x.ms.begin(), x.ms.end());
    const double m = x.ms[x.ms.size() / 2];
    std::printf("  %-40s %9.3f ms %6.1f GB/s  (min %.3f)\n", x.name.c_str(), m,
                static_cast<double>(x.bytes) / m / 1e6, x.ms.front());
  }
  std::free(raw);
}
