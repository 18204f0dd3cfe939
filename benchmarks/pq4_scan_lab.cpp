// The PQ fast-scan kernels on one machine (docs/pq.md): a scan of `places` 4-bit codes of
// m sub-quantizers (32 B per place at m = 64: 32 MB at 1M places, 128 MB at 4M), the
// shipped kernel of each SIMD level (the AVX-512 table ships the AVX2 scan) and a lab
// variant for AVX-512 (four sub-quantizers per 512-bit step; not shipped: on a Zen 5 VM it
// measured 11-26 % faster than the AVX2 scan in one run and, in a first version of it,
// 10 % slower at 4M places in another; docs/pq.md), run interleaved in rounds so they share the
// machine's noise: median and best ms per scan and the read rate. Every kernel's output is checked
// against the scalar reference first. Build and run:
//
//   cmake --build build/host --target vpr_core
//   g++ -O2 -std=c++17 -Icsrc/include -DVPR_HAVE_AVX2 -DVPR_HAVE_AVX512
//       benchmarks/pq4_scan_lab.cpp build/host/csrc/libvpr_core.a -lpthread -o /tmp/pqlab
//   (one command line)
//   /tmp/pqlab 1000000 64 5     # places, sub-quantizers, rounds
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "vpr/kernels.hpp"
#include "vpr/simd.hpp"

namespace {

struct Level {
  std::string name;
  decltype(vpr::KernelTable::pq4_scan) scan;
};

// GCC 12's own intrinsic headers trip -Wmaybe-uninitialized under a target attribute.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// The lab variant: sub-quantizers j..j+3 in the four 128-bit lanes of one 512-bit load
// (codes and tables are adjacent per sub-quantizer); m % 4 == 2 ends with a 256-bit step.
__attribute__((target("avx2,avx512f,avx512bw"))) void pq4_scan_avx512_lab(const std::uint8_t* lut,
                                                                          std::size_t m,
                                                                          const std::uint8_t* codes,
                                                                          std::size_t nblocks,
                                                                          std::uint16_t* out) {
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  const __m512i zero = _mm512_setzero_si512();
  const __m256i nibble2 = _mm256_set1_epi8(0x0f);
  const __m256i zero2 = _mm256_setzero_si256();
  const std::size_t m4 = m & ~std::size_t{3};
  for (std::size_t b = 0; b < nblocks; ++b) {
    const std::uint8_t* block = codes + b * m * 16;
    __m512i acc0 = zero, acc1 = zero, acc2 = zero, acc3 = zero;
    for (std::size_t j = 0; j < m4; j += 4) {
      _mm_prefetch(reinterpret_cast<const char*>(block + j * 16 + 8192), _MM_HINT_T0);
      const __m512i c = _mm512_loadu_si512(block + j * 16);
      const __m512i t = _mm512_loadu_si512(lut + j * 16);
      const __m512i lo = _mm512_shuffle_epi8(t, _mm512_and_si512(c, nibble));
      const __m512i hi = _mm512_shuffle_epi8(t, _mm512_and_si512(_mm512_srli_epi16(c, 4), nibble));
      acc0 = _mm512_add_epi16(acc0, _mm512_unpacklo_epi8(lo, zero));
      acc1 = _mm512_add_epi16(acc1, _mm512_unpackhi_epi8(lo, zero));
      acc2 = _mm512_add_epi16(acc2, _mm512_unpacklo_epi8(hi, zero));
      acc3 = _mm512_add_epi16(acc3, _mm512_unpackhi_epi8(hi, zero));
    }
    __m256i r[4];
    const __m512i accs[4] = {acc0, acc1, acc2, acc3};
    for (int k = 0; k < 4; ++k) {
      r[k] =
          _mm256_add_epi16(_mm512_castsi512_si256(accs[k]), _mm512_extracti64x4_epi64(accs[k], 1));
    }
    if (m4 < m) {
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + m4 * 16));
      const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + m4 * 16));
      const __m256i lo = _mm256_shuffle_epi8(t, _mm256_and_si256(c, nibble2));
      const __m256i hi = _mm256_shuffle_epi8(t, _mm256_and_si256(_mm256_srli_epi16(c, 4), nibble2));
      r[0] = _mm256_add_epi16(r[0], _mm256_unpacklo_epi8(lo, zero2));
      r[1] = _mm256_add_epi16(r[1], _mm256_unpackhi_epi8(lo, zero2));
      r[2] = _mm256_add_epi16(r[2], _mm256_unpacklo_epi8(hi, zero2));
      r[3] = _mm256_add_epi16(r[3], _mm256_unpackhi_epi8(hi, zero2));
    }
    auto* o = reinterpret_cast<__m128i*>(out + b * 32);
    for (int k = 0; k < 4; ++k) {
      _mm_storeu_si128(
          o + k, _mm_add_epi16(_mm256_castsi256_si128(r[k]), _mm256_extracti128_si256(r[k], 1)));
    }
  }
}
#pragma GCC diagnostic pop

}  // namespace

int main(int argc, char** argv) {
  const std::size_t places = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  const std::size_t m = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 64;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 5;
  if (m == 0 || m % 2 != 0 || m > 256 || places < 32 || rounds < 1) {
    std::fprintf(stderr, "usage: pq4_scan_lab PLACES M(even, <= 256) ROUNDS\n");
    return 2;
  }
  const std::size_t nblocks = places / 32;
  std::vector<std::uint8_t> codes(nblocks * m * 16), lut(m * 16);
  std::mt19937 rng(1);
  for (auto& c : codes) c = static_cast<std::uint8_t>(rng());
  for (auto& c : lut) c = static_cast<std::uint8_t>(rng() % 64);
  std::vector<Level> levels{{"scalar", vpr::scalar_kernels().pq4_scan}};
  const vpr::SimdLevel best = vpr::detect_simd_level();
#if defined(VPR_HAVE_AVX2)
  if (best >= vpr::SimdLevel::Avx2) {
    levels.push_back({"avx2", vpr::avx2_kernels(vpr::RowOrder::Sequential).pq4_scan});
  }
#endif
#if defined(VPR_HAVE_AVX512)
  if (best >= vpr::SimdLevel::Avx512) {
    levels.push_back({"avx512", vpr::avx512_kernels(vpr::RowOrder::Sequential).pq4_scan});
    levels.push_back({"avx512-lab", pq4_scan_avx512_lab});
  }
#endif
  std::vector<std::uint16_t> want(nblocks * 32), got(nblocks * 32);
  levels[0].scan(lut.data(), m, codes.data(), nblocks, want.data());
  for (const Level& l : levels) {
    l.scan(lut.data(), m, codes.data(), nblocks, got.data());
    if (got != want) {
      std::fprintf(stderr, "%s differs from the scalar reference\n", l.name.c_str());
      return 1;
    }
  }
  std::vector<std::vector<double>> ms(levels.size());
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t i = 0; i < levels.size(); ++i) {
      for (int rep = 0; rep < 5; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        levels[i].scan(lut.data(), m, codes.data(), nblocks, got.data());
        ms[i].push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
      }
    }
  }
  std::printf("%zu places x %zu B (m = %zu), %d rounds of 5 scans\n", nblocks * 32, m / 2, m,
              rounds);
  for (std::size_t i = 0; i < levels.size(); ++i) {
    std::sort(ms[i].begin(), ms[i].end());
    const double med = ms[i][ms[i].size() / 2];
    std::printf("%-10s median %.3f ms  best %.3f ms  %.1f GB/s\n", levels[i].name.c_str(), med,
                ms[i][0], static_cast<double>(codes.size()) / med / 1e6);
  }
  return 0;
}
