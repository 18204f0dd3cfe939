// The PQ fast-scan kernels on one machine (docs/pq.md): a scan of `places` 4-bit codes of
// m sub-quantizers (32 B per place at m = 64: 32 MB at 1M places, 128 MB at 4M), the
// shipped kernel of each SIMD level (AVX-512: four sub-quantizers per 512-bit step, shipped
// since it measured 10-17% faster than the AVX2 scan on a Xeon guest and 11-26% on a Zen 5
// guest), run interleaved in rounds so they share the machine's noise: median and best ms
// per scan and the read rate. Every kernel's output is checked against the scalar
// reference first. Build and run:
//
//   cmake --build build/host --target vpr_core
//   g++ -O2 -std=c++17 -Icsrc/include -DVPR_HAVE_AVX2 -DVPR_HAVE_AVX512
//       benchmarks/pq4_scan_lab.cpp build/host/csrc/libvpr_core.a -lpthread -o /tmp/pqlab
//   (one command line)
//   /tmp/pqlab 1000000 64 5     # places, sub-quantizers, rounds
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
