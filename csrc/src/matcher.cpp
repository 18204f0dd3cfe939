// Exhaustive top-k search: database rows are split into contiguous ranges, one
// per thread; each thread scores blocks of rows (kernels write a small buffer,
// never a full score array) and keeps a bounded top-k; results are merged.
#include "vpr/matcher.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "scan.hpp"
#include "vpr/kernels.hpp"

namespace vpr {
namespace {

using detail::better;
using detail::Hit;
using detail::TopK;

constexpr std::size_t kBlockBytes = 128 * 1024;  // database block kept in L2 per thread
constexpr std::size_t kMinRowsPerThread = 2048;  // below this a thread costs more than it saves
// ... and at least this many bytes per thread. Threads take chunks as they come
// (run_chunks), so a worker that wakes late costs the caller only the notify, but on a VM
// whose other vCPU sleeps that notify is an IPI: 100k 512-bit codes (6.4 MB) after 2 ms
// idle took 0.212 ms on one thread and 0.224-0.243 on two (Intel, 2026-12-03), while back
// to back two threads won (0.196 vs 0.216). Idle between frames is a camera's case.
// VPR_SCAN_MIN_BYTES_PER_THREAD overrides it (read once); the tests set 0 so that their
// small maps still run on several threads.
constexpr std::size_t kMinBytesPerThread = std::size_t{4} << 20;

std::size_t min_bytes_per_thread() {
  static const std::size_t value = [] {
    const char* v = std::getenv("VPR_SCAN_MIN_BYTES_PER_THREAD");
    return v != nullptr && *v != '\0' ? static_cast<std::size_t>(std::strtoull(v, nullptr, 10))
                                      : kMinBytesPerThread;
  }();
  return value;
}

// Binary scores are 1 - 2 * hamming / dim: a row can beat `worst` only with a
// distance at most this (a superset, rounded up; push() then decides exactly),
// so most rows are rejected on integers without computing scores.
std::uint32_t hamming_limit(float worst, std::size_t dim) {
  const double bound = (1.0 - static_cast<double>(worst)) * static_cast<double>(dim) / 2.0 + 1.0;
  if (bound <= 0.0) return 0;
  return bound >= 4294967295.0 ? 4294967295u : static_cast<std::uint32_t>(bound);
}

bool any_within(const std::uint32_t* dists, std::size_t n, std::uint32_t limit) {
  // Distances are at most the code's bit count (< 2^31), so a signed compare is exact; it
  // vectorises on baseline SSE2, which has no unsigned compare. The unsigned loop stayed
  // scalar and took longer than the Hamming kernel itself (100k 256-bit codes: 45% of a
  // search against 37% for the kernel).
  const std::int32_t lim = limit > 0x7fffffffu ? 0x7fffffff : static_cast<std::int32_t>(limit);
  std::int32_t any = 0;
  for (std::size_t i = 0; i < n; ++i) any |= static_cast<std::int32_t>(dists[i]) <= lim;
  return any != 0;
}

// One thread's buffers: block scores, binary distances, the scoring scratch (which keeps
// packed queries from one block to the next).
struct ScanBuffers {
  ScanBuffers(std::size_t block, std::size_t nq) : scores(block * nq), dists(block) {}
  std::vector<float> scores;
  std::vector<std::uint32_t> dists;
  detail::ScoreScratch scratch;
};

std::size_t block_rows(const DatabaseView& db) {
  return std::max<std::size_t>(16, kBlockBytes / db.row_bytes());
}

// Score rows [begin, end) of the database for every query into tops[q]. Scores come from
// the shared scan layer block by block; binary rows are first rejected on integer
// distances (most cannot enter a full top-k), the rest pushed.
void scan_range(const DatabaseView& db, const detail::EncodedQueries& q, std::size_t begin,
                std::size_t end, std::vector<TopK>& tops, ScanBuffers& buf) {
  const KernelTable& kt = active_kernels();
  const std::size_t row_bytes = db.row_bytes();
  const std::size_t block = block_rows(db);
  const std::size_t nq = q.count;
  const auto* base = static_cast<const std::uint8_t*>(db.codes);
  std::uint32_t* const dists = buf.dists.data();

  for (std::size_t start = begin; start < end; start += block) {
    const std::size_t n = std::min(block, end - start);
    if (db.storage == Storage::Binary) {
      const float inv_dim = 2.0f / static_cast<float>(db.dim);
      constexpr std::size_t kChunk = 64;  // candidates are found 64 rows at a time
      for (std::size_t j = 0; j < nq; ++j) {
        kt.hamming(q.bits.data() + j * row_bytes, base + start * row_bytes, n, row_bytes, dists);
        TopK& top = tops[j];
        for (std::size_t c = 0; c < n; c += kChunk) {
          const std::size_t m = std::min(kChunk, n - c);
          if (top.full() && !any_within(dists + c, m, hamming_limit(top.worst_score(), db.dim))) {
            continue;
          }
          for (std::size_t i = c; i < c + m; ++i) {
            top.push(1.0f - static_cast<float>(static_cast<std::int32_t>(dists[i])) * inv_dim,
                     static_cast<std::int64_t>(start + i));
          }
        }
      }
      continue;
    }
    detail::score_block(db, q, start, n, buf.scores.data(), buf.scratch);
    for (std::size_t j = 0; j < nq; ++j) {
      const float* s = buf.scores.data() + j * n;
      TopK& top = tops[j];
      if (top.full()) {
        // Once the top-k is full most blocks hold no better row: a branch-free
        // (vectorised) test skips them.
        const float worst = top.worst_score();
        bool any = false;
        for (std::size_t i = 0; i < n; ++i) any |= s[i] > worst;
        if (!any) continue;
      }
      for (std::size_t i = 0; i < n; ++i) top.push(s[i], static_cast<std::int64_t>(start + i));
    }
  }
}

// Top-k of every query over the whole database: threads take chunks of rows as they come
// (run_chunks), each keeps its own top-k, and those are merged.
std::vector<TopK> scan(const DatabaseView& db, const detail::EncodedQueries& q, std::size_t k,
                       int num_threads) {
  const std::size_t min_rows = std::max(
      kMinRowsPerThread, min_bytes_per_thread() / std::max<std::size_t>(db.row_bytes(), 1));
  const std::size_t threads = detail::scan_threads(db.count, num_threads, min_rows);
  const std::size_t block = block_rows(db);
  const std::size_t chunk_rows =
      block * std::max<std::size_t>(1, detail::chunk_bytes(db.count * db.row_bytes(), threads) /
                                           (block * db.row_bytes()));
  const std::size_t chunks = (db.count + chunk_rows - 1) / chunk_rows;
  std::vector<std::vector<TopK>> partial(threads, std::vector<TopK>(q.count, TopK(k)));
  std::vector<std::unique_ptr<ScanBuffers>> buffers(threads);
  detail::run_chunks(threads, chunks, [&](std::size_t slot, std::size_t c) {
    if (!buffers[slot]) buffers[slot] = std::make_unique<ScanBuffers>(block, q.count);
    const std::size_t begin = c * chunk_rows;
    scan_range(db, q, begin, std::min(db.count, begin + chunk_rows), partial[slot], *buffers[slot]);
  });
  for (std::size_t t = 1; t < threads; ++t) {
    for (std::size_t j = 0; j < q.count; ++j) partial[0][j].merge(partial[t][j]);
  }
  return std::move(partial[0]);
}

// What every search checks before scanning; the query's dimension and values are checked
// where the queries are encoded (scan layer), or by search_int8 for its own codes.
void validate_common(const DatabaseView& db, const SearchOptions& opt) {
  db.validate();
  if (opt.k == 0) throw std::invalid_argument("k must be at least 1");
  if (opt.rerank != nullptr) {
    opt.rerank->validate();
    detail::check_rerank(*opt.rerank, db.count, db.dim);
  }
}

}  // namespace

namespace detail {

SearchResults collect(std::vector<TopK>& tops, std::size_t k) {
  SearchResults out;
  out.num_queries = tops.size();
  out.k = k;
  out.ids.resize(out.num_queries * k);
  out.scores.resize(out.num_queries * k);
  for (std::size_t j = 0; j < tops.size(); ++j) {
    const std::vector<Hit> hits = tops[j].sorted();
    for (std::size_t i = 0; i < k; ++i) {
      out.ids[j * k + i] = hits[i].id;
      out.scores[j * k + i] = hits[i].score;
    }
  }
  return out;
}

void check_rerank(const DatabaseView& exact, std::size_t count, std::size_t dim) {
  exact.validate();
  if (exact.storage == Storage::Binary || exact.count != count || exact.dim != dim) {
    throw std::invalid_argument(
        "the re-ranking database must be float32, float16 or int8 with the same places and "
        "dimension as the shortlist database");
  }
}

SearchResults rerank(const DatabaseView& exact, const std::vector<float>& queries,
                     std::vector<TopK>& shortlists, std::size_t k) {
  // Queries arrive projected and normalised: encode them for the exact codes as they are.
  const std::size_t nq = shortlists.size();
  const EncodedQueries all = encode_queries(exact, queries.data(), nq, exact.dim, Projection{});
  ScoreScratch scratch;
  std::vector<TopK> tops(nq, TopK(k));
  for (std::size_t j = 0; j < nq; ++j) {
    EncodedQueries one;
    one.count = 1;
    one.dim = exact.dim;
    one.floats.assign(all.floats.begin() + j * exact.dim, all.floats.begin() + (j + 1) * exact.dim);
    if (!all.int8.empty()) {
      one.int8.assign(all.int8.begin() + j * exact.dim, all.int8.begin() + (j + 1) * exact.dim);
      one.int8_scales.assign(1, all.int8_scales[j]);
    }
    for (const Hit& h : shortlists[j].sorted()) {
      float s = 0.0f;
      score_block(exact, one, static_cast<std::size_t>(h.id), 1, &s, scratch);
      tops[j].insert({s, h.id});
    }
  }
  return detail::collect(tops, k);
}

void check_candidates(const std::uint32_t* ids, std::size_t n, std::size_t count) {
  if (ids == nullptr && n > 0) throw std::invalid_argument("candidate ids are null");
  for (std::size_t i = 0; i < n; ++i) {
    if (ids[i] >= count || (i > 0 && ids[i] <= ids[i - 1])) {
      throw std::invalid_argument(
          "candidate places must be sorted, distinct ids below the place count " +
          std::to_string(count));
    }
  }
}

}  // namespace detail

int resolve_threads(int num_threads) {
  if (num_threads < 0) throw std::invalid_argument("the thread count must be >= 0 (0: all cores)");
  if (num_threads > 0) return num_threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

SearchResults search(const DatabaseView& db, const float* queries, std::size_t num_queries,
                     std::size_t query_dim, const SearchOptions& options) {
  validate_common(db, options);
  resolve_threads(options.num_threads);
  const detail::EncodedQueries q =
      detail::encode_queries(db, queries, num_queries, query_dim, options.projection);
  const std::size_t k = std::min(options.k, db.count);
  if (num_queries == 0) {
    std::vector<TopK> none;
    return detail::collect(none, k);
  }
  if (options.restrict_to_candidates) {
    // Position prior: runs of consecutive ids (a route's places lie in order) are scanned
    // as ranges by the same block scorer, on one thread: a prior leaves few places.
    detail::check_candidates(options.candidates, options.num_candidates, db.count);
    const std::size_t kc = std::min(k, options.num_candidates);
    const bool two_stage = options.rerank != nullptr && options.shortlist > 0;
    const std::size_t m =
        two_stage ? std::min(std::max(options.shortlist, kc), options.num_candidates) : kc;
    std::vector<TopK> tops(num_queries, TopK(m));
    if (m > 0) {
      const std::uint32_t* c = options.candidates;
      ScanBuffers buffers(block_rows(db), num_queries);
      for (std::size_t i = 0; i < options.num_candidates;) {
        std::size_t e = i + 1;
        while (e < options.num_candidates && c[e] == c[e - 1] + 1) ++e;
        scan_range(db, q, c[i], static_cast<std::size_t>(c[e - 1]) + 1, tops, buffers);
        i = e;
      }
    }
    if (two_stage && m > 0) return detail::rerank(*options.rerank, q.floats, tops, kc);
    return detail::collect(tops, m == 0 ? 0 : kc);
  }
  if (options.rerank != nullptr && options.shortlist > 0) {
    const std::size_t m = std::min(std::max(options.shortlist, k), db.count);
    std::vector<TopK> shortlists = scan(db, q, m, options.num_threads);
    return detail::rerank(*options.rerank, q.floats, shortlists, k);
  }
  std::vector<TopK> tops = scan(db, q, k, options.num_threads);
  return detail::collect(tops, k);
}

SearchResults search_int8(const DatabaseView& db, const std::int8_t* queries,
                          const float* query_scales, std::size_t num_queries, std::size_t query_dim,
                          const SearchOptions& options) {
  if (db.storage != Storage::Int8) {
    throw std::invalid_argument("int8 queries need an int8 database; pass float32 queries instead");
  }
  if (options.projection.enabled() || options.rerank != nullptr) {
    throw std::invalid_argument(
        "projection and re-ranking need float32 queries; pass float32 queries instead");
  }
  validate_common(db, options);
  resolve_threads(options.num_threads);
  if (query_dim != db.dim) {
    throw std::invalid_argument("query dimension " + std::to_string(query_dim) +
                                " does not match the database dimension " + std::to_string(db.dim));
  }
  detail::EncodedQueries q;
  q.count = num_queries;
  q.dim = db.dim;
  q.int8.assign(queries, queries + num_queries * query_dim);
  q.int8_scales.assign(query_scales, query_scales + num_queries);
  detail::check_finite(q.int8_scales.data(), num_queries, "query scales");
  for (std::int8_t v : q.int8) {
    if (v == -128) throw std::invalid_argument("int8 queries must lie in [-127, 127]");
  }
  const std::size_t k = std::min(options.k, db.count);
  std::vector<TopK> tops;
  if (num_queries > 0) tops = scan(db, q, k, options.num_threads);
  return detail::collect(tops, k);
}

}  // namespace vpr
