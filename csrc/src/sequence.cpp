// SeqSLAM-style sequence matching: full scoring, local contrast
// normalisation, straight-line sums over a ring buffer of recent frames.
#include "vpr/sequence.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "scan.hpp"

namespace vpr {
namespace {

constexpr std::size_t kMinRowsPerThread = 8192;
constexpr std::size_t kMaxLength = 4096;
constexpr std::size_t kMaxVelocitySteps = 1024;
constexpr std::size_t kScoreBlock = 1024;  // rows scored per kernel call

using detail::check_finite;

// Appends the top-k of n scores (one query row) to `out`.
void append_top_k(const float* scores, std::size_t n, std::size_t k, SearchResults& out) {
  k = std::min(k, n);
  std::vector<std::int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  auto better = [scores](std::int64_t a, std::int64_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  };
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), better);
  out.k = k;
  for (std::size_t i = 0; i < k; ++i) {
    out.ids.push_back(idx[i]);
    out.scores.push_back(scores[idx[i]]);
  }
  out.num_queries += 1;
}

}  // namespace

void SequenceOptions::validate() const {
  if (length == 0 || length > kMaxLength) {
    throw std::invalid_argument("sequence length must be in [1, " + std::to_string(kMaxLength) +
                                "], got " + std::to_string(length));
  }
  if (!std::isfinite(v_min) || !std::isfinite(v_max) || v_min < 0.0f || v_max < v_min) {
    throw std::invalid_argument("velocities need 0 <= v_min <= v_max (finite), got v_min=" +
                                std::to_string(v_min) + ", v_max=" + std::to_string(v_max));
  }
  if (v_steps == 0 || v_steps > kMaxVelocitySteps) {
    throw std::invalid_argument("v_steps must be in [1, " + std::to_string(kMaxVelocitySteps) +
                                "], got " + std::to_string(v_steps));
  }
  if (contrast_window < 2) {
    throw std::invalid_argument("contrast_window must be at least 2 places, got " +
                                std::to_string(contrast_window));
  }
  if (k == 0) throw std::invalid_argument("k must be at least 1");
  resolve_threads(num_threads);
}

void score_all(const DatabaseView& db, const float* query, std::size_t query_dim,
               const Projection& projection, float* out, int num_threads) {
  db.validate();
  const detail::EncodedQueries q = detail::encode_queries(db, query, 1, query_dim, projection);
  const std::size_t threads = detail::scan_threads(db.count, num_threads, kMinRowsPerThread);
  // Threads take kScoreBlock rows at a time (run_chunks), each with its own scratch.
  const std::size_t chunks = (db.count + kScoreBlock - 1) / kScoreBlock;
  std::vector<detail::ScoreScratch> scratch(threads);
  detail::run_chunks(threads, chunks, [&](std::size_t slot, std::size_t c) {
    const std::size_t s = c * kScoreBlock;
    detail::score_block(db, q, s, std::min(kScoreBlock, db.count - s), out + s, scratch[slot]);
  });
}

void contrast_normalise(const float* scores, std::size_t n, std::size_t window, float* out) {
  if (n == 0) return;
  window = std::max<std::size_t>(1, std::min(window, n));
  std::vector<double> sum(n + 1, 0.0), sq(n + 1, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    const double v = scores[i];
    sum[i + 1] = sum[i] + v;
    sq[i + 1] = sq[i] + v * v;
  }
  const std::size_t half = window / 2;
  for (std::size_t i = 0; i < n; ++i) {
    // Window of `window` places centred on i, shifted inside [0, n).
    std::size_t lo = i >= half ? i - half : 0;
    if (lo + window > n) lo = n - window;
    const std::size_t hi = lo + window;
    const double m = static_cast<double>(hi - lo);
    const double mean = (sum[hi] - sum[lo]) / m;
    const double var = std::max(0.0, (sq[hi] - sq[lo]) / m - mean * mean);
    const double sd = std::sqrt(var);
    out[i] = sd > 1e-12 ? static_cast<float>((scores[i] - mean) / sd) : 0.0f;
  }
}

SequenceScorer::SequenceScorer(std::size_t places, const SequenceOptions& options)
    : places_(places), options_(options) {
  options_.validate();
  if (places == 0) {
    throw std::invalid_argument("the database is empty: add at least one place before searching");
  }
  if (places > SIZE_MAX / sizeof(float) / options_.length) {
    throw std::invalid_argument("sequence buffer too large");
  }
  ring_.assign(options_.length * places, 0.0f);
  sequence_.assign(places, 0.0f);
  line_.assign(places, 0.0f);
}

void SequenceScorer::reset() {
  frames_ = 0;
  head_ = 0;
}

SearchResults SequenceScorer::push_scores(const float* scores) {
  return push(scores, nullptr, 0, false);
}

SearchResults SequenceScorer::push_scores(const float* scores, const std::uint32_t* window,
                                          std::size_t n) {
  return push(scores, window, n, true);
}

// An empty window may come as a null pointer (an empty vector's data()), so whether a
// window applies is its own flag, not a null window.
SearchResults SequenceScorer::push(const float* scores, const std::uint32_t* window, std::size_t n,
                                   bool windowed) {
  if (windowed) detail::check_candidates(window, n, places_);
  check_finite(scores, places_, "scores");
  const std::size_t L = options_.length;
  head_ = frames_ == 0 ? 0 : (head_ + 1) % L;
  float* z = ring_.data() + head_ * places_;
  contrast_normalise(scores, places_, options_.contrast_window, z);
  if (windowed) {
    std::vector<std::uint8_t> inside(places_, 0);
    for (std::size_t i = 0; i < n; ++i) inside[window[i]] = 1;
    for (std::size_t i = 0; i < places_; ++i) {
      if (!inside[i]) z[i] = -std::numeric_limits<float>::infinity();
    }
  }
  frames_ = std::min(frames_ + 1, L);
  accumulate();
  SearchResults r;
  append_top_k(sequence_.data(), places_, options_.k, r);
  return r;
}

void SequenceScorer::accumulate() {
  const std::size_t n = places_;
  const std::size_t L = options_.length;
  std::fill(sequence_.begin(), sequence_.end(), -std::numeric_limits<float>::infinity());
  for (std::size_t s = 0; s < options_.v_steps; ++s) {
    const double v = options_.v_steps == 1
                         ? options_.v_min
                         : options_.v_min + (static_cast<double>(options_.v_max) - options_.v_min) *
                                                static_cast<double>(s) /
                                                static_cast<double>(options_.v_steps - 1);
    std::fill(line_.begin(), line_.end(), 0.0f);
    for (std::size_t k = 0; k < frames_; ++k) {
      // Frame t - k sits k slots behind the newest one.
      const float* z = ring_.data() + ((head_ + L - k) % L) * n;
      const auto shift = static_cast<std::size_t>(std::llround(v * static_cast<double>(k)));
      if (shift >= n) continue;
      float* acc = line_.data() + shift;
      const std::size_t m = n - shift;
      for (std::size_t i = 0; i < m; ++i) acc[i] += z[i];
    }
    for (std::size_t i = 0; i < n; ++i) sequence_[i] = std::max(sequence_[i], line_[i]);
  }
}

SequenceMatcher::SequenceMatcher(const DatabaseView& db, const SequenceOptions& options,
                                 const Projection& projection)
    : db_(db), projection_(projection), scorer_((db.validate(), db.count), options) {
  if (projection_.enabled() && projection_.out_dim != db_.dim) {
    throw std::invalid_argument("projection output dimension does not match the database");
  }
  scores_.resize(db_.count);
}

SearchResults SequenceMatcher::push(const float* query, std::size_t query_dim) {
  score_all(db_, query, query_dim, projection_, scores_.data(), scorer_.options().num_threads);
  return scorer_.push_scores(scores_.data());
}

SearchResults SequenceMatcher::push(const float* query, std::size_t query_dim,
                                    const std::uint32_t* candidates, std::size_t num_candidates) {
  detail::check_candidates(candidates, num_candidates, db_.count);
  const detail::EncodedQueries q = detail::encode_queries(db_, query, 1, query_dim, projection_);
  detail::ScoreScratch scratch;
  for (std::size_t i = 0; i < num_candidates;) {  // runs of consecutive places
    std::size_t e = i + 1;
    while (e < num_candidates && candidates[e] == candidates[e - 1] + 1) ++e;
    for (std::size_t s = candidates[i]; s <= candidates[e - 1]; s += kScoreBlock) {
      const std::size_t n = std::min<std::size_t>(kScoreBlock, candidates[e - 1] + 1 - s);
      detail::score_block(db_, q, s, n, scores_.data() + s, scratch);
    }
    i = e;
  }
  // Places outside take the window's mean (neutral for the contrast normalisation of the
  // places inside); their normalised scores then become -inf.
  double mean = 0.0;
  for (std::size_t i = 0; i < num_candidates; ++i) mean += scores_[candidates[i]];
  mean = num_candidates > 0 ? mean / static_cast<double>(num_candidates) : 0.0;
  std::vector<std::uint8_t> inside(db_.count, 0);
  for (std::size_t i = 0; i < num_candidates; ++i) inside[candidates[i]] = 1;
  for (std::size_t i = 0; i < db_.count; ++i) {
    if (!inside[i]) scores_[i] = static_cast<float>(mean);
  }
  return scorer_.push_scores(scores_.data(), candidates, num_candidates);
}

SearchResults sequence_search(const DatabaseView& db, const float* queries, std::size_t num_queries,
                              std::size_t query_dim, const SequenceOptions& options,
                              const Projection& projection) {
  SequenceMatcher matcher(db, options, projection);
  SearchResults out;
  out.k = std::min(options.k, db.count);
  out.ids.reserve(num_queries * out.k);
  out.scores.reserve(num_queries * out.k);
  for (std::size_t j = 0; j < num_queries; ++j) {
    const SearchResults r = matcher.push(queries + j * query_dim, query_dim);
    out.ids.insert(out.ids.end(), r.ids.begin(), r.ids.end());
    out.scores.insert(out.scores.end(), r.scores.begin(), r.scores.end());
    out.num_queries += 1;
  }
  return out;
}

SearchResults sequence_search_scores(const float* scores, std::size_t num_queries,
                                     std::size_t places, const SequenceOptions& options) {
  SequenceScorer scorer(places, options);
  SearchResults out;
  out.k = std::min(options.k, places);
  for (std::size_t j = 0; j < num_queries; ++j) {
    const SearchResults r = scorer.push_scores(scores + j * places);
    out.ids.insert(out.ids.end(), r.ids.begin(), r.ids.end());
    out.scores.insert(out.scores.end(), r.scores.begin(), r.scores.end());
    out.num_queries += 1;
  }
  return out;
}

}  // namespace vpr
