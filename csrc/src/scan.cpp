// The scan layer (scan.hpp): query checks and encoding, block scoring, the worker pool.
#include "scan.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "vpr/kernels.hpp"

namespace vpr::detail {
namespace {

// Persistent workers: a single query on a small map takes well under a
// millisecond, so starting threads per search would cost more than it saves.
class WorkerPool {
 public:
  // Runs task(t) for the caller (t = 0) and for workers t in [1, count) that wake before
  // the caller's task(0) returns. The task is a loop over shared work that any one
  // participant can finish alone (run_chunks), so workers that have not started by then
  // skip this run: the caller waits only for workers that joined, never for a wake-up
  // (tens of microseconds on a VM, as long as a small scan).
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
      open_ = true;
      running_ = 0;
      ++generation_;
    }
    start_.notify_all();
    task(0);
    std::unique_lock<std::mutex> lock(mutex_);
    open_ = false;  // late workers skip: the work is done
    done_.wait(lock, [this] { return running_ == 0; });
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
        if (index >= count_ || !open_) continue;
        ++running_;
        task = task_;
      }
      (*task)(index);
      std::lock_guard<std::mutex> lock(mutex_);
      --running_;
      done_.notify_one();
    }
  }

  std::mutex busy_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  std::vector<std::thread> workers_;
  const std::function<void(std::size_t)>* task_ = nullptr;
  std::size_t count_ = 0;
  bool open_ = false;        // workers may still join the current run
  std::size_t running_ = 0;  // workers in the current run's task
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

}  // namespace

void run_chunks(std::size_t threads, std::size_t chunks,
                const std::function<void(std::size_t, std::size_t)>& body) {
  // One counter hands chunks out in increasing order, so each slot sees its chunks (and
  // their rows) in increasing order, which TopK::push relies on for ties. After an
  // exception the remaining chunks are skipped.
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  const std::function<void(std::size_t)> task = [&](std::size_t slot) {
    for (;;) {
      const std::size_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks) return;
      try {
        body(slot, c);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(chunks, std::memory_order_relaxed);  // skip the rest
        return;
      }
    }
  };
  const std::size_t count = std::min(threads, chunks);
  WorkerPool* const pool = worker_pool();
  if (count <= 1) {
    task(0);
  } else if (!pool->try_run(count, task)) {  // concurrent searches: private threads
    std::vector<std::thread> helpers;
    for (std::size_t t = 1; t < count; ++t) helpers.emplace_back(task, t);
    task(0);
    for (auto& th : helpers) th.join();
  }
  if (error) std::rethrow_exception(error);
}

std::size_t chunk_bytes(std::size_t total_bytes, std::size_t threads) {
  constexpr std::size_t kMin = 256 * 1024, kMax = 2 * 1024 * 1024;
  if (threads <= 1) return std::max<std::size_t>(total_bytes, 1);  // one stream, no restarts
  return std::clamp(total_bytes / (8 * threads), kMin, kMax);
}

std::size_t scan_threads(std::size_t rows, int requested, std::size_t min_rows_per_thread) {
  const std::size_t by_size = std::max<std::size_t>(1, rows / min_rows_per_thread);
  return std::min<std::size_t>(static_cast<std::size_t>(resolve_threads(requested)), by_size);
}

void check_finite(const float* x, std::size_t n, const char* what) {
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      throw std::invalid_argument(std::string(what) + " contain a non-finite value (NaN or inf)");
    }
  }
}

EncodedQueries encode_queries(const DatabaseView& db, const float* queries, std::size_t num_queries,
                              std::size_t query_dim, const Projection& projection) {
  const std::size_t expected = projection.enabled() ? projection.in_dim : db.dim;
  if (query_dim != expected) {
    throw std::invalid_argument(
        "query dimension " + std::to_string(query_dim) + " does not match the " +
        (projection.enabled() ? "projection input dimension " : "database dimension ") +
        std::to_string(expected));
  }
  if (projection.enabled() && projection.out_dim != db.dim) {
    throw std::invalid_argument("projection output dimension " +
                                std::to_string(projection.out_dim) +
                                " does not match the database dimension " + std::to_string(db.dim));
  }
  check_finite(queries, num_queries * query_dim, "queries");
  const std::size_t d = db.dim;
  EncodedQueries q;
  q.count = num_queries;
  q.dim = d;
  q.floats.resize(num_queries * d);
  if (projection.enabled()) {
    // q' = normalise((q - mean) P): the map stores projected, normalised rows.
    const Projection& p = projection;
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
  return q;
}

void score_block(const DatabaseView& db, const EncodedQueries& q, std::size_t start, std::size_t n,
                 float* out, ScoreScratch& scratch) {
  const KernelTable& kt = active_kernels();
  const std::size_t row_bytes = db.row_bytes();
  const std::size_t nq = q.count;
  const auto* rows = static_cast<const std::uint8_t*>(db.codes) + start * row_bytes;
  switch (db.storage) {
    case Storage::Float32:
      if (nq == 1) {
        kt.dot_f32(q.floats.data(), reinterpret_cast<const float*>(rows), n, db.dim, out);
      } else {
        kt.dot_f32_batch(q.floats.data(), nq, reinterpret_cast<const float*>(rows), n, db.dim, out);
      }
      return;
    case Storage::Float16:
      if (nq == 1) {
        kt.dot_f16(q.floats.data(), reinterpret_cast<const std::uint16_t*>(rows), n, db.dim, out);
      } else {  // widen the block once, then reuse it across the query tiles
        scratch.widened.resize(n * db.dim);
        kt.f16_to_f32(reinterpret_cast<const std::uint16_t*>(rows), n * db.dim,
                      scratch.widened.data());
        kt.dot_f32_batch(q.floats.data(), nq, scratch.widened.data(), n, db.dim, out);
      }
      return;
    case Storage::Int8: {
      scratch.ints.resize(n * nq);
      const auto* codes = reinterpret_cast<const std::int8_t*>(rows);
      if (nq == 1) {
        kt.dot_i8(q.int8.data(), codes, n, db.dim, scratch.ints.data());
      } else if (kt.dot_i8_batch_packed != nullptr) {
        if (scratch.packed_from != q.int8.data() || scratch.packed_by != kt.pack_i8_queries) {
          scratch.packed.resize(kt.packed_i8_bytes(nq, db.dim));
          kt.pack_i8_queries(q.int8.data(), nq, db.dim, scratch.packed.data());
          scratch.packed_from = q.int8.data();
          scratch.packed_by = kt.pack_i8_queries;
        }
        kt.dot_i8_batch_packed(scratch.packed.data(), nq, codes, n, db.dim, scratch.ints.data());
      } else {
        kt.dot_i8_batch(q.int8.data(), nq, codes, n, db.dim, scratch.ints.data());
      }
      const float* row_scales = db.scales + start;
      for (std::size_t j = 0; j < nq; ++j) {
        const float qs = q.int8_scales[j];
        for (std::size_t i = 0; i < n; ++i) {
          out[j * n + i] = static_cast<float>(scratch.ints[j * n + i]) * qs * row_scales[i];
        }
      }
      return;
    }
    case Storage::Binary: {
      scratch.dists.resize(n);
      const float inv_dim = 2.0f / static_cast<float>(db.dim);
      for (std::size_t j = 0; j < nq; ++j) {
        kt.hamming(q.bits.data() + j * row_bytes, rows, n, row_bytes, scratch.dists.data());
        for (std::size_t i = 0; i < n; ++i) {
          out[j * n + i] =
              1.0f - static_cast<float>(static_cast<std::int32_t>(scratch.dists[i])) * inv_dim;
        }
      }
      return;
    }
    case Storage::Pq4:  // DatabaseView::validate() refuses PQ views before any scan
      throw std::invalid_argument("PQ codes are searched through vpr::search_pq");
  }
}

}  // namespace vpr::detail
