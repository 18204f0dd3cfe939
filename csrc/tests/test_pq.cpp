// PQ fast scan: the kernels of every SIMD level against the scalar reference (bit-exact
// uint16 sums), the block packing, search (flat, IVF, re-rank, candidates) against a
// brute-force evaluation of the same approximate scores, and the position grid.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include "vpr/kernels.hpp"
#include "vpr/positions.hpp"
#include "vpr/pq.hpp"
#include "vpr/simd.hpp"

namespace {

std::vector<std::uint8_t> random_codes(std::mt19937& rng, std::size_t n, std::size_t m) {
  std::uniform_int_distribution<int> dist(0, 15);
  std::vector<std::uint8_t> c(n * m);
  for (auto& x : c) x = static_cast<std::uint8_t>(dist(rng));
  return c;
}

std::vector<float> unit_rows(std::mt19937& rng, std::size_t n, std::size_t d) {
  std::normal_distribution<float> dist;
  std::vector<float> x(n * d);
  for (std::size_t i = 0; i < n; ++i) {
    double norm = 0.0;
    for (std::size_t j = 0; j < d; ++j) {
      x[i * d + j] = dist(rng);
      norm += double(x[i * d + j]) * x[i * d + j];
    }
    for (std::size_t j = 0; j < d; ++j) x[i * d + j] /= static_cast<float>(std::sqrt(norm));
  }
  return x;
}

struct LevelGuard {
  explicit LevelGuard(vpr::SimdLevel level) { vpr::force_simd_level(level); }
  ~LevelGuard() { vpr::reset_simd_level(); }
};

// A PQ database with its own storage; slot maps / IVF filled by make_ivf().
struct PqData {
  std::size_t n, d, m;
  std::vector<float> codebooks;
  std::vector<std::uint8_t> raw;  // n x m codes
  std::vector<std::uint8_t> packed;
  std::vector<float> centroids;
  std::vector<std::uint64_t> list_blocks;
  std::vector<std::uint32_t> slot_places, place_slots;
  vpr::PqView view;

  PqData(std::mt19937& rng, std::size_t n_, std::size_t d_, std::size_t m_) : n(n_), d(d_), m(m_) {
    codebooks = unit_rows(rng, m * 16, d / m);
    raw = random_codes(rng, n, m);
    packed = vpr::pack_pq4_codes(raw.data(), n, m);
    view.count = n;
    view.dim = d;
    view.m = m;
    view.codebooks = codebooks.data();
    view.codes = packed.data();
    view.blocks = (n + 31) / 32;
  }

  // Lists: place p goes to list p % nlist; each list padded to whole blocks.
  void make_ivf(std::mt19937& rng, std::size_t nlist) {
    centroids = unit_rows(rng, nlist, d);
    std::vector<std::vector<std::uint32_t>> lists(nlist);
    for (std::size_t p = 0; p < n; ++p) lists[p % nlist].push_back(static_cast<std::uint32_t>(p));
    std::vector<std::uint8_t> slot_codes;
    list_blocks.assign(1, 0);
    slot_places.clear();
    for (const auto& list : lists) {
      for (std::uint32_t p : list) {
        slot_places.push_back(p);
        slot_codes.insert(slot_codes.end(), raw.begin() + p * m, raw.begin() + (p + 1) * m);
      }
      while (slot_places.size() % 32 != 0) {
        slot_places.push_back(vpr::kPqNoPlace);
        slot_codes.insert(slot_codes.end(), m, 0);
      }
      list_blocks.push_back(slot_places.size() / 32);
    }
    packed = vpr::pack_pq4_codes(slot_codes.data(), slot_places.size(), m);
    place_slots = vpr::invert_slots(slot_places.data(), slot_places.size(), n);
    view.codes = packed.data();
    view.blocks = slot_places.size() / 32;
    view.slot_places = slot_places.data();
    view.place_slots = place_slots.data();
    view.ivf.nlist = nlist;
    view.ivf.centroids = centroids.data();
    view.ivf.list_blocks = list_blocks.data();
  }

  // The approximate score the search must reproduce, from the unpacked codes.
  float approx(const vpr::PqTable& t, std::size_t p) const {
    unsigned acc = 0;
    for (std::size_t j = 0; j < m; ++j) acc += t.table[j * 16 + raw[p * m + j]];
    return t.bias + t.scale * static_cast<float>(acc);
  }
};

// Brute-force top-k (score desc, id asc) of the approximate scores over `places`.
std::vector<std::int64_t> brute_top(const PqData& data, const vpr::PqTable& t,
                                    const std::vector<std::uint32_t>& places, std::size_t k) {
  std::vector<std::pair<float, std::int64_t>> all;
  for (std::uint32_t p : places) all.push_back({data.approx(t, p), p});
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  std::vector<std::int64_t> ids;
  for (std::size_t i = 0; i < std::min(k, all.size()); ++i) ids.push_back(all[i].second);
  return ids;
}

std::vector<std::uint32_t> all_places(std::size_t n) {
  std::vector<std::uint32_t> v(n);
  std::iota(v.begin(), v.end(), 0u);
  return v;
}

}  // namespace

TEST_CASE("pq4_scan of every SIMD level matches the scalar reference") {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  // 6 and 66: whole 4-sub-quantizer steps then a half step (the AVX-512 scan's masked tail).
  for (std::size_t m : {2, 4, 6, 8, 16, 32, 64, 66, 128, 256}) {
    for (std::size_t blocks : {1, 2, 3, 65, 130}) {
      std::vector<std::uint8_t> codes(blocks * m * 16), lut(m * 16);
      for (auto& c : codes) c = static_cast<std::uint8_t>(byte(rng));
      for (auto& v : lut) v = static_cast<std::uint8_t>(byte(rng));
      // The largest entries too: 256 x 255 must not wrap a uint16.
      if (m == 256) std::fill(lut.begin(), lut.end(), 255);
      std::vector<std::uint16_t> want(blocks * 32), got(blocks * 32);
      vpr::scalar_kernels().pq4_scan(lut.data(), m, codes.data(), blocks, want.data());
      if (m == 256) CHECK(want[0] == 256 * 255);
      for (vpr::SimdLevel level : vpr::supported_simd_levels()) {
        for (vpr::RowOrder order : {vpr::RowOrder::Sequential, vpr::RowOrder::Interleaved,
                                    vpr::RowOrder::SequentialPrefetch}) {
          const vpr::KernelTable* k = vpr::kernels_for(level, order);
          REQUIRE(k != nullptr);
          std::fill(got.begin(), got.end(), 0);
          k->pq4_scan(lut.data(), m, codes.data(), blocks, got.data());
          INFO("level " << vpr::simd_level_name(level) << " m " << m << " blocks " << blocks);
          CHECK(got == want);
        }
      }
    }
  }
}

TEST_CASE("pack_pq4_codes: low nibble slots 0..15, high nibble 16..31, padding 0") {
  const std::size_t m = 2, n = 33;
  std::vector<std::uint8_t> raw(n * m);
  for (std::size_t p = 0; p < n; ++p) {
    raw[p * m] = static_cast<std::uint8_t>(p % 16);
    raw[p * m + 1] = static_cast<std::uint8_t>(15 - p % 16);
  }
  const auto packed = vpr::pack_pq4_codes(raw.data(), n, m);
  REQUIRE(packed.size() == 2 * m * 16);
  CHECK(packed[3] == (3 | (((19) % 16) << 4)));           // sub 0: slots 3 and 19
  CHECK(packed[16 + 3] == ((15 - 3) | ((15 - 3) << 4)));  // sub 1
  CHECK(packed[32] == 0);                                 // block 1, slot 32 code 0 -> 0
  CHECK(packed[32 + 1] == 0);                             // slot 33 is padding
  raw[5] = 16;
  CHECK_THROWS_AS(vpr::pack_pq4_codes(raw.data(), n, m), std::invalid_argument);
}

TEST_CASE("search_pq matches a brute-force top-k of the same approximate scores") {
  std::mt19937 rng(11);
  for (vpr::SimdLevel level : vpr::supported_simd_levels()) {
    LevelGuard guard(level);
    for (std::size_t n : {1, 31, 32, 33, 1000, 5000}) {
      PqData data(rng, n, 64, 16);
      const auto queries = unit_rows(rng, 3, 64);
      for (std::size_t k : {1, 5, 50}) {
        for (int threads : {1, 2}) {
          vpr::SearchOptions opt;
          opt.k = k;
          opt.num_threads = threads;
          const auto res = vpr::search_pq(data.view, queries.data(), 3, 64, opt);
          REQUIRE(res.k == std::min(k, n));
          for (std::size_t j = 0; j < 3; ++j) {
            const auto t = vpr::pq_query_table(data.view, queries.data() + j * 64);
            const auto want = brute_top(data, t, all_places(n), k);
            const std::vector<std::int64_t> got(res.ids.begin() + j * res.k,
                                                res.ids.begin() + (j + 1) * res.k);
            INFO("n " << n << " k " << k << " level " << vpr::simd_level_name(level));
            CHECK(got == want);
            CHECK(res.scores[j * res.k] == doctest::Approx(data.approx(t, want[0])));
          }
        }
      }
    }
  }
}

TEST_CASE("search_pq with IVF: all lists equal flat; nprobe scans only the nearest lists") {
  std::mt19937 rng(12);
  PqData data(rng, 3000, 32, 8);
  PqData flat = data;
  flat.view.codebooks = flat.codebooks.data();
  flat.view.codes = flat.packed.data();
  data.make_ivf(rng, 10);
  data.view.check_values();
  const auto q = unit_rows(rng, 1, 32);
  vpr::SearchOptions opt;
  opt.k = 20;
  const auto a = vpr::search_pq(flat.view, q.data(), 1, 32, opt);
  const auto b = vpr::search_pq(data.view, q.data(), 1, 32, opt);
  CHECK(a.ids == b.ids);
  // nprobe 1: the list whose centroid scores highest, and only its places.
  std::size_t best = 0;
  float best_score = -2.0f;
  for (std::size_t l = 0; l < 10; ++l) {
    float s = 0.0f;
    for (std::size_t t = 0; t < 32; ++t) s += q[t] * data.centroids[l * 32 + t];
    if (s > best_score) best_score = s, best = l;
  }
  opt.nprobe = 1;
  const auto c = vpr::search_pq(data.view, q.data(), 1, 32, opt);
  std::vector<std::uint32_t> members;
  for (std::uint32_t p = 0; p < 3000; ++p) {
    if (p % 10 == best) members.push_back(p);
  }
  const auto t = vpr::pq_query_table(data.view, q.data());
  CHECK(c.ids == brute_top(data, t, members, 20));
  // k above the probed list's 300 places: the next lists follow, k distinct places come back.
  opt.k = 500;
  const auto spill = vpr::search_pq(data.view, q.data(), 1, 32, opt);
  REQUIRE(spill.k == 500);
  std::vector<std::int64_t> distinct = spill.ids;
  std::sort(distinct.begin(), distinct.end());
  CHECK(std::unique(distinct.begin(), distinct.end()) == distinct.end());
  CHECK(distinct.back() < 3000);
  // Candidates through the slot map: scattered over every list (the masked full scan), two
  // (the comparison-sort path; run for coverage, the grouping changes no score), 15
  // (through the slot bitmap, scored place by place) and a run of 100 in few blocks of
  // every list (bitmap, dense blocks), each equal to brute force. Which path a run takes
  // follows from the 3000 places (3200 slots) against kSlotsPerCandidateForBitmap (1024).
  struct Run {
    std::uint32_t first, step, last;
  };
  const auto restricted = [](const std::vector<std::uint32_t>& cand) {
    vpr::SearchOptions co;
    co.k = 10;
    co.restrict_to_candidates = true;
    co.candidates = cand.data();
    co.num_candidates = cand.size();
    return co;
  };
  for (const Run run :
       {Run{3, 7, 3000}, Run{5, 1499, 3000}, Run{3, 211, 3000}, Run{1000, 1, 1100}}) {
    std::vector<std::uint32_t> cand;
    for (std::uint32_t p = run.first; p < run.last; p += run.step) cand.push_back(p);
    CAPTURE(run.first);
    CAPTURE(run.step);
    CHECK(vpr::search_pq(data.view, q.data(), 1, 32, restricted(cand)).ids ==
          brute_top(data, t, cand, 10));
  }
  // A view filled by hand that skipped check_values: a candidate whose slot is padding is an
  // error in the bitmap path, not an out-of-bounds read.
  {
    std::vector<std::uint32_t> cand;
    for (std::uint32_t p = 1000; p < 1100; ++p) cand.push_back(p);
    std::size_t pad = 0;
    while (data.slot_places[pad] != vpr::kPqNoPlace) ++pad;
    const std::uint32_t saved = data.place_slots[1000];
    data.place_slots[1000] = static_cast<std::uint32_t>(pad);
    CHECK_THROWS_AS(vpr::search_pq(data.view, q.data(), 1, 32, restricted(cand)),
                    std::invalid_argument);
    data.place_slots[1000] = saved;
  }
  // A corrupt slot map is refused by check_values.
  data.slot_places[5] = data.slot_places[6];
  CHECK_THROWS_AS(data.view.check_values(), std::invalid_argument);
}

TEST_CASE("search_pq: candidates restrict the places, re-ranking is exact") {
  std::mt19937 rng(13);
  PqData data(rng, 2000, 64, 32);
  const auto q = unit_rows(rng, 1, 64);
  const auto t = vpr::pq_query_table(data.view, q.data());
  std::vector<std::uint32_t> cand;
  for (std::uint32_t p = 500; p < 700; p += 3) cand.push_back(p);
  vpr::SearchOptions opt;
  opt.k = 10;
  opt.restrict_to_candidates = true;
  opt.candidates = cand.data();
  opt.num_candidates = cand.size();
  const auto r = vpr::search_pq(data.view, q.data(), 1, 64, opt);
  CHECK(r.ids == brute_top(data, t, cand, 10));
  // Candidates in every block (a full scan keeping only them) and in dense blocks (kernel).
  for (std::uint32_t step : {5u, 1u}) {
    std::vector<std::uint32_t> spread;
    for (std::uint32_t p = step == 1 ? 640 : 0; p < (step == 1 ? 700u : 2000u); p += step) {
      spread.push_back(p);
    }
    opt.candidates = spread.data();
    opt.num_candidates = spread.size();
    CHECK(vpr::search_pq(data.view, q.data(), 1, 64, opt).ids == brute_top(data, t, spread, 10));
  }
  opt.candidates = cand.data();
  opt.num_candidates = 0;  // nothing within the radius: no results, no error
  CHECK(vpr::search_pq(data.view, q.data(), 1, 64, opt).k == 0);
  std::vector<std::uint32_t> unsorted = {5, 3};
  opt.candidates = unsorted.data();
  opt.num_candidates = 2;
  CHECK_THROWS_AS(vpr::search_pq(data.view, q.data(), 1, 64, opt), std::invalid_argument);

  // Re-rank against exact float32 rows: the result is the exact top-k of the shortlist.
  const auto rows = unit_rows(rng, 2000, 64);
  vpr::DatabaseView exact;
  exact.storage = vpr::Storage::Float32;
  exact.count = 2000;
  exact.dim = 64;
  exact.codes = rows.data();
  vpr::SearchOptions ro;
  ro.k = 5;
  ro.shortlist = 2000;  // everything: must equal exhaustive float32
  ro.rerank = &exact;
  const auto rr = vpr::search_pq(data.view, q.data(), 1, 64, ro);
  vpr::SearchOptions fo;
  fo.k = 5;
  const auto ff = vpr::search(exact, q.data(), 1, 64, fo);
  CHECK(rr.ids == ff.ids);
  exact.dim = 32;
  CHECK_THROWS_AS(vpr::search_pq(data.view, q.data(), 1, 64, ro), std::invalid_argument);
}

TEST_CASE("search_pq refuses bad views and queries") {
  std::mt19937 rng(14);
  PqData data(rng, 100, 64, 16);
  const auto q = unit_rows(rng, 1, 64);
  vpr::SearchOptions opt;
  CHECK_THROWS_AS(vpr::search_pq(data.view, q.data(), 1, 32, opt), std::invalid_argument);
  auto v = data.view;
  v.m = 3;
  CHECK_THROWS_AS(vpr::search_pq(v, q.data(), 1, 64, opt), std::invalid_argument);
  v = data.view;
  v.blocks = 2;
  CHECK_THROWS_AS(vpr::search_pq(v, q.data(), 1, 64, opt), std::invalid_argument);
  std::vector<float> nan_q(64, std::nanf(""));
  CHECK_THROWS_AS(vpr::search_pq(data.view, nan_q.data(), 1, 64, opt), std::invalid_argument);
  // Finite codebooks whose table entries differ by more than FLT_MAX (a corrupt map the
  // fuzzer built; its float range was inf and the quantized entries NaN): refused.
  const float huge = 0.9f * std::numeric_limits<float>::max();
  auto wide = data.codebooks;
  for (std::size_t c = 0; c < 16; ++c) {
    for (std::size_t t = 0; t < 4; ++t) wide[c * 4 + t] = (c % 2 == 0 ? huge : -huge);
  }
  v = data.view;
  v.codebooks = wide.data();
  std::vector<float> first(64, 0.0f);
  first[0] = 1.0f;
  CHECK_THROWS_AS(vpr::search_pq(v, first.data(), 1, 64, opt), std::invalid_argument);
  // Table entries closer than a normal float scale: one level, every score equal, no error.
  auto flat = data.codebooks;
  for (std::size_t c = 0; c < 16; ++c) flat[c * 4] = (c % 2 == 0 ? 1e-38f : 0.0f);
  v.codebooks = flat.data();
  const auto t = vpr::pq_query_table(v, first.data());
  CHECK(std::all_of(t.table.begin(), t.table.begin() + 16, [](std::uint8_t x) { return x == 0; }));
}

TEST_CASE("PositionGrid::within equals a brute-force radius test") {
  std::mt19937 rng(21);
  std::uniform_real_distribution<double> u(0.0, 1000.0);
  // A winding route (thin band) plus scattered places.
  std::vector<double> xy;
  for (int i = 0; i < 5000; ++i) {
    const double s = i * 0.5;
    xy.push_back(s);
    xy.push_back(100.0 * std::sin(s / 200.0));
  }
  for (int i = 0; i < 500; ++i) {
    xy.push_back(u(rng));
    xy.push_back(u(rng));
  }
  const std::size_t n = xy.size() / 2;
  vpr::PositionGrid grid(xy.data(), n, vpr::PositionKind::Utm);
  for (double r : {0.0, 1.0, 10.0, 75.0, 5000.0}) {
    for (int t = 0; t < 20; ++t) {
      const double x = u(rng) * 2.5, y = u(rng) / 5.0 - 100.0;
      std::vector<std::uint32_t> want;
      for (std::size_t i = 0; i < n; ++i) {
        const double dx = xy[2 * i] - x, dy = xy[2 * i + 1] - y;
        if (dx * dx + dy * dy <= r * r) want.push_back(static_cast<std::uint32_t>(i));
      }
      CHECK(grid.within(x, y, r) == want);
    }
  }
  // A radius spanning more cells than fit the integers: one pass over every entry, whose
  // places (stored in grid order) still come back sorted by id.
  std::vector<std::uint32_t> every(n);
  for (std::size_t i = 0; i < n; ++i) every[i] = static_cast<std::uint32_t>(i);
  CHECK(grid.within(0, 0, 1e15) == every);
  CHECK_THROWS_AS(grid.within(0, 0, -1), std::invalid_argument);
  CHECK_THROWS_AS(grid.within(std::nan(""), 0, 1), std::invalid_argument);
  xy[3] = std::nan("");
  CHECK_THROWS_AS(vpr::PositionGrid(xy.data(), n, vpr::PositionKind::Utm), std::invalid_argument);
}

TEST_CASE("PositionGrid with latitude/longitude measures metres") {
  // Two places 0.001 degrees of latitude apart: about 111 m.
  const std::vector<double> ll = {48.0, 11.0, 48.001, 11.0, 48.0, 11.01};
  vpr::PositionGrid grid(ll.data(), 3, vpr::PositionKind::LatLon);
  CHECK(grid.within(48.0, 11.0, 100.0) == std::vector<std::uint32_t>{0});
  CHECK(grid.within(48.0, 11.0, 120.0) == std::vector<std::uint32_t>{0, 1});
  // 0.01 degrees of longitude at 48 N: about 744 m.
  CHECK(grid.within(48.0, 11.0, 700.0).size() == 2);
  CHECK(grid.within(48.0, 11.0, 800.0).size() == 3);
}

TEST_CASE("PositionGrid on a straight route (tiny cells) equals brute force") {
  // 200k places on one line, as a frame index along a railway: the grid halves its cells
  // until few places share one, so a radius spans thousands of cells per axis.
  std::mt19937 rng(23);
  std::uniform_real_distribution<double> u(0.0, 2000.0);
  const std::size_t n = 200000;
  std::vector<double> xy(2 * n, 0.0);
  for (std::size_t i = 0; i < n; ++i) xy[2 * i] = u(rng);
  vpr::PositionGrid grid(xy.data(), n, vpr::PositionKind::Utm);
  for (double r : {0.5, 5.0, 40.0}) {
    const double x = u(rng);
    std::vector<std::uint32_t> want;
    for (std::size_t i = 0; i < n; ++i) {
      if (std::fabs(xy[2 * i] - x) <= r) want.push_back(static_cast<std::uint32_t>(i));
    }
    CHECK(grid.within(x, 0.0, r) == want);
    CHECK(grid.within(x, 0.3, r) == grid.within(x, -0.3, r));
  }
}
