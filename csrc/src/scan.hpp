// The scan layer shared by every search (matcher.cpp) and by sequence scoring
// (sequence.cpp): query checks and encoding, block scoring per storage, and the
// persistent worker pool. Internal to vpr_core (not an installed header).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "vpr/kernels.hpp"
#include "vpr/matcher.hpp"

namespace vpr::detail {

struct Hit {
  float score;
  std::int64_t id;
};

// Total order: higher score first, then lower id (deterministic results).
inline bool better(const Hit& a, const Hit& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
}

// Bounded top-k as a heap whose front is the worst kept hit.
class TopK {
 public:
  explicit TopK(std::size_t k) : k_(k) { hits_.reserve(k); }

  // Rows arrive in increasing id within one scan, so a tie never displaces.
  void push(float score, std::int64_t id) {
    if (hits_.size() < k_) {
      hits_.push_back({score, id});
      std::push_heap(hits_.begin(), hits_.end(), better);
    } else if (score > hits_.front().score) {
      std::pop_heap(hits_.begin(), hits_.end(), better);
      hits_.back() = {score, id};
      std::push_heap(hits_.begin(), hits_.end(), better);
    }
  }

  bool full() const { return hits_.size() == k_; }
  std::size_t size() const { return hits_.size(); }
  float worst_score() const { return hits_.front().score; }

  // Any order of arrival.
  void insert(const Hit& h) {
    if (hits_.size() < k_) {
      hits_.push_back(h);
      std::push_heap(hits_.begin(), hits_.end(), better);
    } else if (better(h, hits_.front())) {
      std::pop_heap(hits_.begin(), hits_.end(), better);
      hits_.back() = h;
      std::push_heap(hits_.begin(), hits_.end(), better);
    }
  }

  void merge(const TopK& other) {
    for (const Hit& h : other.hits_) insert(h);
  }

  std::vector<Hit> sorted() const {
    std::vector<Hit> out = hits_;
    std::sort(out.begin(), out.end(), better);
    return out;
  }

 private:
  std::size_t k_;
  std::vector<Hit> hits_;
};

// Throws std::invalid_argument naming `what` if any of the n values is NaN or inf.
void check_finite(const float* x, std::size_t n, const char* what);

// Queries in the form each storage scans with: float rows (projected and normalised when
// a projection is set; also what re-ranking uses), int8 codes with one scale per query,
// or packed sign bits.
struct EncodedQueries {
  std::size_t count = 0;
  std::size_t dim = 0;
  std::vector<float> floats;
  std::vector<std::int8_t> int8;
  std::vector<float> int8_scales;
  std::vector<std::uint8_t> bits;
};

// Checks the query dimension against the database (or the projection's input), the
// projection against the database, and the values; then encodes for db's storage.
EncodedQueries encode_queries(const DatabaseView& db, const float* queries, std::size_t num_queries,
                              std::size_t query_dim, const Projection& projection);

// Per-call scratch for score_block (kernels write blocks, never a full score array). It
// also holds int8 batch queries packed for the kernels that want them (amx), packed at
// the first block and reused for the others: a scratch serves the blocks of one scan of
// one EncodedQueries.
struct ScoreScratch {
  std::vector<std::int32_t> ints;
  std::vector<std::uint32_t> dists;
  std::vector<float> widened;
  std::vector<std::int8_t> packed;
  const std::int8_t* packed_from = nullptr;  // the queries `packed` holds, and by whom
  decltype(vpr::KernelTable::pack_i8_queries) packed_by = nullptr;
};

// Scores of rows [start, start + n) for every query: out[j * n + i]. Float32/float16:
// inner product; int8: dequantised inner product; binary: 1 - 2 * hamming / dim.
void score_block(const DatabaseView& db, const EncodedQueries& q, std::size_t start, std::size_t n,
                 float* out, ScoreScratch& scratch);

// Runs body(slot, chunk) for every chunk in [0, chunks) on at most `threads` threads of the
// process's worker pool (rebuilt in a forked child); slot (in [0, threads)) names the participant,
// for per-thread state. The caller starts at once and takes chunks one at a time; a worker takes
// the next chunks when it wakes, and one that wakes after the last chunk is not waited for. So a
// split never costs the wake-up of a parked worker (tens of microseconds on a VM: a scan of a few
// MB), and a late worker takes fewer chunks instead of holding up the search. Each slot runs its
// chunks in increasing order. The first exception is rethrown.
void run_chunks(std::size_t threads, std::size_t chunks,
                const std::function<void(std::size_t, std::size_t)>& body);

// Bytes per run_chunks chunk for a scan of total_bytes on `threads` threads: about an
// eighth of a thread's share (a late worker still finds work), within [256 KB, 2 MB]; on
// one thread the whole scan.
// Each chunk restarts the hardware prefetcher's stream: 256 KB chunks made a 2-thread scan
// of 1M float32 rows 11-20% slower than halves (Intel, 2026-12-03), 2 MB ones did not.
std::size_t chunk_bytes(std::size_t total_bytes, std::size_t threads);

// How many threads scan `rows` rows: at most `requested` (0: all cores), and no more than
// one per `min_rows_per_thread` rows (below that a thread costs more than it saves).
std::size_t scan_threads(std::size_t rows, int requested, std::size_t min_rows_per_thread);

// Sorted top-k of each query (k entries per query; each TopK holds at least k).
SearchResults collect(std::vector<TopK>& tops, std::size_t k);

// Throws std::invalid_argument unless `exact` can re-rank a database of count x dim.
void check_rerank(const DatabaseView& exact, std::size_t count, std::size_t dim);

// Top-k of each query's shortlist re-scored exactly against `exact` (queries: float rows
// of exact.dim, already projected and normalised).
SearchResults rerank(const DatabaseView& exact, const std::vector<float>& queries,
                     std::vector<TopK>& shortlists, std::size_t k);

// Throws std::invalid_argument unless ids are sorted, distinct and below count.
void check_candidates(const std::uint32_t* ids, std::size_t n, std::size_t count);

}  // namespace vpr::detail
