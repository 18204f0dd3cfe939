// Sequence matching (SeqSLAM-style) over a database of places.
//
// Each query frame is scored against every place (the same scores vpr::search
// ranks), then locally contrast-normalised over the database: place i's score
// becomes (s_i - mean) / std over a window of `contrast_window` places around
// i. A place's sequence score is the best, over velocities v in
// [v_min, v_max] (database places per query frame, v_steps values), of the sum
// of normalised scores along the straight line that ends at place i for the
// current frame: sum_k z_{t-k}[round(i - v k)], k = 0 .. L-1 (terms that fall
// before place 0, or frames not seen yet, add nothing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vpr/matcher.hpp"

namespace vpr {

struct SequenceOptions {
  std::size_t length = 10;  // L: query frames per sequence
  float v_min = 0.8f;       // velocities searched, database places per query frame
  float v_max = 1.25f;
  std::size_t v_steps = 5;           // velocities linearly spaced in [v_min, v_max]
  std::size_t contrast_window = 10;  // R: places in the local contrast window
  std::size_t k = 5;                 // results per push
  int num_threads = 1;               // threads that score a frame (0: all cores)
  // Throws std::invalid_argument with the reason.
  void validate() const;
};

// out[i] = score of place i for one float32 query (dimension projection.in_dim
// with a projection, else db.dim), as vpr::search scores it, with the active
// SIMD kernels. Throws std::invalid_argument on bad arguments.
void score_all(const DatabaseView& db, const float* query, std::size_t query_dim,
               const Projection& projection, float* out, int num_threads = 1);

// Local contrast normalisation of n scores over a window of `window` places
// centred on each place (clipped at the ends); constant windows give 0.
void contrast_normalise(const float* scores, std::size_t n, std::size_t window, float* out);

// Online sequence matching over precomputed score vectors (n places each);
// keeps a ring buffer of the last L normalised vectors.
class SequenceScorer {
 public:
  SequenceScorer(std::size_t places, const SequenceOptions& options);
  // Adds one frame's raw scores (n values) and returns the top-k places by
  // sequence score (one query row; ties broken by the lower index).
  SearchResults push_scores(const float* scores);
  // The same where only the `window` places (sorted ids) belong to this frame: the others'
  // normalised scores are -inf (see SequenceMatcher::push with candidates).
  SearchResults push_scores(const float* scores, const std::uint32_t* window, std::size_t n);
  // Sequence scores of every place for the frames held (n values).
  const std::vector<float>& sequence_scores() const { return sequence_; }
  void reset();
  std::size_t frames() const { return frames_; }
  std::size_t places() const { return places_; }
  const SequenceOptions& options() const { return options_; }

 private:
  SearchResults push(const float* scores, const std::uint32_t* window, std::size_t n,
                     bool windowed);
  void accumulate();
  std::size_t places_;
  SequenceOptions options_;
  std::vector<float> ring_;      // L x n normalised scores
  std::vector<float> sequence_;  // n sequence scores of the last push
  std::vector<float> line_;      // n scratch sums for one velocity
  std::size_t head_ = 0;         // slot of the newest frame
  std::size_t frames_ = 0;       // frames held (<= L)
};

// Online sequence matcher over a database view (non-owning: the view, e.g. a
// memory-mapped map, and the projection must outlive it).
class SequenceMatcher {
 public:
  SequenceMatcher(const DatabaseView& db, const SequenceOptions& options,
                  const Projection& projection = {});
  // Scores one query frame and returns the top-k places by sequence score.
  SearchResults push(const float* query, std::size_t query_dim);
  // The same with a position prior that moves with the robot (a window per frame): only
  // the num_candidates places at `candidates` (sorted, distinct, < count; e.g. from
  // MapFileView::places_near) are scored, so scoring costs what the window holds. Places
  // outside the window are out of this frame: their normalised score is -inf, so no
  // sequence ends there (they come last, at -inf, only when the window holds fewer than k
  // places) and no later sequence passes through them at this frame. The contrast
  // normalisation sees the window's mean score in their place. The sequence accumulation
  // itself still runs over every place.
  SearchResults push(const float* query, std::size_t query_dim, const std::uint32_t* candidates,
                     std::size_t num_candidates);
  void reset() { scorer_.reset(); }
  const SequenceScorer& scorer() const { return scorer_; }

 private:
  DatabaseView db_;
  Projection projection_;
  SequenceScorer scorer_;
  std::vector<float> scores_;
};

// Batch (evaluation): query j's result uses frames j-L+1 .. j, in order.
SearchResults sequence_search(const DatabaseView& db, const float* queries, std::size_t num_queries,
                              std::size_t query_dim, const SequenceOptions& options,
                              const Projection& projection = {});
// Batch over a precomputed score matrix (num_queries x places, row-major).
SearchResults sequence_search_scores(const float* scores, std::size_t num_queries,
                                     std::size_t places, const SequenceOptions& options);

}  // namespace vpr
