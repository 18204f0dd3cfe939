// Exhaustive top-k search: database rows are split into contiguous ranges, one
// per thread; each thread scores blocks of rows (kernels write a small buffer,
// never a full score array) and keeps a bounded top-k; results are merged.
#include "vpr/matcher.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "vpr/kernels.hpp"

namespace vpr {
namespace {

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

// Queries in the form each storage type scans with.
struct EncodedQueries {
  std::size_t count = 0;
  std::size_t dim = 0;
  std::vector<float> floats;      // Float32 / Float16 databases (and re-ranking)
  std::vector<std::int8_t> int8;  // Int8 database
  std::vector<float> int8_scales;
  std::vector<std::uint8_t> bits;  // Binary database
};

constexpr std::size_t kBlockBytes = 128 * 1024;  // database block kept in L2 per thread
constexpr std::size_t kMinRowsPerThread = 2048;  // below this a thread costs more than it saves

void check_finite(const float* x, std::size_t n, const char* what) {
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      throw std::invalid_argument(std::string(what) + " contain a non-finite value (NaN or inf)");
    }
  }
}

// Persistent workers: a single query on a small map takes well under a
// millisecond, so starting threads per search would cost more than it saves.
class WorkerPool {
 public:
  // Runs task(t) for t in [0, count): the caller runs t = 0, workers the rest.
  // Returns false (running nothing) when another search holds the pool.
  bool try_run(std::size_t count, const std::function<void(std::size_t)>& task) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (workers_.size() + 1 < count) {
        const std::size_t index = workers_.size() + 1;
        workers_.emplace_back([this, index] { work(index); });
      }
      task_ = &task;
      count_ = count;
      pending_ = count - 1;
      ++generation_;
    }
    start_.notify_all();
    task(0);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    task_ = nullptr;
    return true;
  }

 private:
  void work(std::size_t index) {
    std::uint64_t seen = 0;
    for (;;) {
      const std::function<void(std::size_t)>* task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        start_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (index >= count_) continue;
        task = task_;
      }
      (*task)(index);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex busy_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  std::vector<std::thread> workers_;
  const std::function<void(std::size_t)>* task_ = nullptr;
  std::size_t count_ = 0;
  std::size_t pending_ = 0;
  std::uint64_t generation_ = 0;
};

// The process's pool. fork() copies the pool but none of its threads (and possibly a
// mutex held by a search in another thread), so a child that used it would wait forever
// for workers that do not exist: the child drops it and builds its own on first use.
// Pools are never destroyed: workers may still be parked when static destructors run,
// and a child must not touch the parent's copy (its mutexes may be locked).
std::atomic<WorkerPool*> current_pool{nullptr};

void forget_pool_in_child() { current_pool.store(nullptr); }

WorkerPool* worker_pool() {
  static const int registered = pthread_atfork(nullptr, nullptr, forget_pool_in_child);
  (void)registered;
  WorkerPool* pool = current_pool.load(std::memory_order_acquire);
  if (pool == nullptr) {
    auto* fresh = new WorkerPool();
    if (current_pool.compare_exchange_strong(pool, fresh, std::memory_order_acq_rel)) {
      pool = fresh;
    } else {
      delete fresh;  // another thread installed one first; `pool` now holds it
    }
  }
  return pool;
}

// Runs body(t) for t in [0, count) on count threads; the first exception is rethrown.
void run_parallel(std::size_t count, const std::function<void(std::size_t)>& body) {
  std::exception_ptr error;
  std::mutex error_mutex;
  const std::function<void(std::size_t)> task = [&](std::size_t t) {
    try {
      body(t);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  WorkerPool* const pool = worker_pool();
  if (count <= 1) {
    task(0);
  } else if (!pool->try_run(count, task)) {  // concurrent searches: private threads
    std::vector<std::thread> threads;
    for (std::size_t t = 1; t < count; ++t) threads.emplace_back(task, t);
    task(0);
    for (auto& th : threads) th.join();
  }
  if (error) std::rethrow_exception(error);
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
  bool any = false;
  for (std::size_t i = 0; i < n; ++i) any |= dists[i] <= limit;
  return any;
}

// Score rows [begin, end) of the database for every query into tops[q].
void scan_range(const DatabaseView& db, const EncodedQueries& q, std::size_t begin, std::size_t end,
                std::vector<TopK>& tops) {
  const KernelTable& kt = active_kernels();
  const std::size_t row_bytes = db.row_bytes();
  const std::size_t block = std::max<std::size_t>(16, kBlockBytes / row_bytes);
  const std::size_t nq = q.count;
  std::vector<float> scores(block * nq);
  std::vector<std::int32_t> ints(block * nq);
  std::vector<std::uint32_t> dists(block);
  std::vector<float> widened;  // float16 block widened to float32 (query batches)
  const auto* base = static_cast<const std::uint8_t*>(db.codes);

  for (std::size_t start = begin; start < end; start += block) {
    const std::size_t n = std::min(block, end - start);
    const std::uint8_t* rows = base + start * row_bytes;
    switch (db.storage) {
      case Storage::Float32:
        if (nq == 1) {
          kt.dot_f32(q.floats.data(), reinterpret_cast<const float*>(rows), n, db.dim,
                     scores.data());
        } else {
          kt.dot_f32_batch(q.floats.data(), nq, reinterpret_cast<const float*>(rows), n, db.dim,
                           scores.data());
        }
        break;
      case Storage::Float16:
        if (nq == 1) {
          kt.dot_f16(q.floats.data(), reinterpret_cast<const std::uint16_t*>(rows), n, db.dim,
                     scores.data());
        } else {  // widen the block once, then reuse it across the query tiles
          widened.resize(n * db.dim);
          kt.f16_to_f32(reinterpret_cast<const std::uint16_t*>(rows), n * db.dim, widened.data());
          kt.dot_f32_batch(q.floats.data(), nq, widened.data(), n, db.dim, scores.data());
        }
        break;
      case Storage::Int8: {
        const auto* codes = reinterpret_cast<const std::int8_t*>(rows);
        if (nq == 1) {
          kt.dot_i8(q.int8.data(), codes, n, db.dim, ints.data());
        } else {
          kt.dot_i8_batch(q.int8.data(), nq, codes, n, db.dim, ints.data());
        }
        const float* row_scales = db.scales + start;
        for (std::size_t j = 0; j < nq; ++j) {
          const float qs = q.int8_scales[j];
          for (std::size_t i = 0; i < n; ++i) {
            scores[j * n + i] = static_cast<float>(ints[j * n + i]) * qs * row_scales[i];
          }
        }
        break;
      }
      case Storage::Binary: {
        const std::size_t nbytes = row_bytes;
        const float inv_dim = 2.0f / static_cast<float>(db.dim);
        // Candidates are found on integer distances, 64 rows at a time, and only
        // they are scored and pushed.
        constexpr std::size_t kChunk = 64;
        for (std::size_t j = 0; j < nq; ++j) {
          kt.hamming(q.bits.data() + j * nbytes, rows, n, nbytes, dists.data());
          TopK& top = tops[j];
          for (std::size_t c = 0; c < n; c += kChunk) {
            const std::size_t m = std::min(kChunk, n - c);
            if (top.full() &&
                !any_within(dists.data() + c, m, hamming_limit(top.worst_score(), db.dim))) {
              continue;
            }
            for (std::size_t i = c; i < c + m; ++i) {
              top.push(1.0f - static_cast<float>(static_cast<std::int32_t>(dists[i])) * inv_dim,
                       static_cast<std::int64_t>(start + i));
            }
          }
        }
        continue;  // pushed already
      }
    }
    for (std::size_t j = 0; j < nq; ++j) {
      const float* s = scores.data() + j * n;
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

// Top-k of every query over the whole database, threads over row ranges.
std::vector<TopK> scan(const DatabaseView& db, const EncodedQueries& q, std::size_t k,
                       int num_threads) {
  const std::size_t by_size = std::max<std::size_t>(1, db.count / kMinRowsPerThread);
  const std::size_t threads =
      std::min<std::size_t>(static_cast<std::size_t>(resolve_threads(num_threads)), by_size);
  std::vector<std::vector<TopK>> partial(threads, std::vector<TopK>(q.count, TopK(k)));
  const std::size_t chunk = (db.count + threads - 1) / threads;
  run_parallel(threads, [&](std::size_t t) {
    const std::size_t begin = std::min(db.count, t * chunk);
    const std::size_t end = std::min(db.count, begin + chunk);
    scan_range(db, q, begin, end, partial[t]);
  });
  for (std::size_t t = 1; t < threads; ++t) {
    for (std::size_t j = 0; j < q.count; ++j) partial[0][j].merge(partial[t][j]);
  }
  return std::move(partial[0]);
}

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

void validate_common(const DatabaseView& db, std::size_t query_dim, const SearchOptions& opt) {
  db.validate();
  if (opt.k == 0) throw std::invalid_argument("k must be at least 1");
  const std::size_t expected = opt.projection.enabled() ? opt.projection.in_dim : db.dim;
  if (query_dim != expected) {
    throw std::invalid_argument(
        "query dimension " + std::to_string(query_dim) + " does not match the " +
        (opt.projection.enabled() ? "projection input dimension " : "database dimension ") +
        std::to_string(expected));
  }
  if (opt.projection.enabled() && opt.projection.out_dim != db.dim) {
    throw std::invalid_argument("projection output dimension " +
                                std::to_string(opt.projection.out_dim) +
                                " does not match the database dimension " + std::to_string(db.dim));
  }
  if (opt.rerank != nullptr) {
    opt.rerank->validate();
    if (opt.rerank->storage != Storage::Float32 || opt.rerank->count != db.count ||
        opt.rerank->dim != db.dim) {
      throw std::invalid_argument(
          "the re-ranking database must be float32 with the same places and dimension as the "
          "shortlist database");
    }
  }
}

// Exact float32 re-ranking of each query's shortlist.
SearchResults rerank(const DatabaseView& exact, const std::vector<float>& queries,
                     std::vector<TopK>& shortlists, std::size_t k) {
  const KernelTable& kt = active_kernels();
  const auto* rows = static_cast<const float*>(exact.codes);
  std::vector<TopK> tops(shortlists.size(), TopK(k));
  for (std::size_t j = 0; j < shortlists.size(); ++j) {
    for (const Hit& h : shortlists[j].sorted()) {
      float s = 0.0f;
      kt.dot_f32(queries.data() + j * exact.dim, rows + static_cast<std::size_t>(h.id) * exact.dim,
                 1, exact.dim, &s);
      tops[j].insert({s, h.id});
    }
  }
  return collect(tops, k);
}

}  // namespace

int resolve_threads(int num_threads) {
  if (num_threads < 0) throw std::invalid_argument("the thread count must be >= 0 (0: all cores)");
  if (num_threads > 0) return num_threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

SearchResults search(const DatabaseView& db, const float* queries, std::size_t num_queries,
                     std::size_t query_dim, const SearchOptions& options) {
  validate_common(db, query_dim, options);
  resolve_threads(options.num_threads);
  check_finite(queries, num_queries * query_dim, "queries");
  const std::size_t d = db.dim;
  EncodedQueries q;
  q.count = num_queries;
  q.dim = d;
  q.floats.resize(num_queries * d);
  if (options.projection.enabled()) {
    // q' = normalise((q - mean) P): the map stores projected, normalised rows.
    const Projection& p = options.projection;
    std::vector<float> centred(p.in_dim);
    for (std::size_t j = 0; j < num_queries; ++j) {
      const float* src = queries + j * p.in_dim;
      for (std::size_t c = 0; c < p.in_dim; ++c) centred[c] = src[c] - (p.mean ? p.mean[c] : 0.0f);
      float* dst = q.floats.data() + j * d;
      std::fill(dst, dst + d, 0.0f);
      for (std::size_t c = 0; c < p.in_dim; ++c) {
        const float* prow = p.matrix + c * d;
        for (std::size_t o = 0; o < d; ++o) dst[o] += centred[c] * prow[o];
      }
      double norm = 0.0;
      for (std::size_t o = 0; o < d; ++o) norm += static_cast<double>(dst[o]) * dst[o];
      if (norm > 0.0) {
        const float inv = static_cast<float>(1.0 / std::sqrt(norm));
        for (std::size_t o = 0; o < d; ++o) dst[o] *= inv;
      }
    }
    check_finite(q.floats.data(), q.floats.size(), "projected queries");
  } else {
    std::copy(queries, queries + num_queries * d, q.floats.begin());
  }
  if (db.storage == Storage::Int8) {
    q.int8.resize(num_queries * d);
    q.int8_scales.resize(num_queries);
    quantize_int8(q.floats.data(), num_queries, d, q.int8.data(), q.int8_scales.data());
  } else if (db.storage == Storage::Binary) {
    q.bits.resize(num_queries * binary_bytes(d));
    binarize(q.floats.data(), num_queries, d, q.bits.data());
  }
  const std::size_t k = std::min(options.k, db.count);
  if (num_queries == 0) {
    std::vector<TopK> none;
    return collect(none, k);
  }
  if (options.rerank != nullptr && options.shortlist > 0) {
    const std::size_t m = std::min(std::max(options.shortlist, k), db.count);
    std::vector<TopK> shortlists = scan(db, q, m, options.num_threads);
    return rerank(*options.rerank, q.floats, shortlists, k);
  }
  std::vector<TopK> tops = scan(db, q, k, options.num_threads);
  return collect(tops, k);
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
  validate_common(db, query_dim, options);
  resolve_threads(options.num_threads);
  EncodedQueries q;
  q.count = num_queries;
  q.dim = db.dim;
  q.int8.assign(queries, queries + num_queries * query_dim);
  q.int8_scales.assign(query_scales, query_scales + num_queries);
  check_finite(q.int8_scales.data(), num_queries, "query scales");
  for (std::int8_t v : q.int8) {
    if (v == -128) throw std::invalid_argument("int8 queries must lie in [-127, 127]");
  }
  const std::size_t k = std::min(options.k, db.count);
  std::vector<TopK> tops;
  if (num_queries > 0) tops = scan(db, q, k, options.num_threads);
  return collect(tops, k);
}

}  // namespace vpr
