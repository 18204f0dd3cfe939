// Uses the installed headers and vpr::core: encode 1,000 int8 places, search one query
// that equals place 617, and exit 0 only when it comes back first with score ~1.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "vpr/matcher.hpp"

int main() {
  const std::size_t n = 1000, d = 64;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> rows(n * d);
  for (std::size_t i = 0; i < n; ++i) {
    float norm = 0;
    for (std::size_t j = 0; j < d; ++j) norm += (rows[i * d + j] = normal(rng)) * rows[i * d + j];
    for (std::size_t j = 0; j < d; ++j) rows[i * d + j] /= std::sqrt(norm);
  }
  const auto db = vpr::Database::encode(rows.data(), n, d, vpr::Storage::Int8);
  vpr::SearchOptions options;
  options.k = 3;
  options.num_threads = 1;
  const auto r = vpr::search(db.view(), rows.data() + 617 * d, 1, d, options);
  std::printf("top-1 %lld score %.4f\n", static_cast<long long>(r.ids[0]), r.scores[0]);
  return (r.ids[0] == 617 && r.scores[0] > 0.99f) ? 0 : 1;
}
