// Exhaustive top-k search of L2-normalised descriptors by inner product.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vpr {

// Pq4: product-quantized 4-bit codes (vpr/pq.hpp), held only by map files and searched
// through them (MapFileView::search); PQ codes are not rows, so a DatabaseView never
// holds Pq4 codes.
enum class Storage : std::uint8_t { Float32 = 0, Float16 = 1, Int8 = 2, Binary = 3, Pq4 = 4 };

const char* storage_name(Storage storage);

// Non-owning view of an encoded database (numpy buffers, a memory-mapped map
// file, or a Database below). Rows are contiguous and row-major.
struct DatabaseView {
  Storage storage = Storage::Float32;
  std::size_t count = 0;          // number of places
  std::size_t dim = 0;            // descriptor dimension (bits for Binary)
  const void* codes = nullptr;    // float / uint16 half bits / int8 / packed sign bits
  const float* scales = nullptr;  // Int8 only: one symmetric scale per row

  // Bytes of one encoded row.
  std::size_t row_bytes() const;
  // Throws std::invalid_argument if the view is inconsistent.
  void validate() const;
  // validate() plus one pass over the data: throws std::invalid_argument for a non-finite
  // float32/float16 value, an int8 code of -128, or a NaN, infinite or negative int8
  // scale, which would give NaN scores and unsorted results. O(count x dim): run once,
  // when a database is wrapped or a map is opened, not per search.
  void check_values() const;
};

// Owning encoded database.
class Database {
 public:
  // Encode n L2-normalised float32 rows of dimension d. Throws on non-finite values.
  static Database encode(const float* rows, std::size_t n, std::size_t d, Storage storage);
  DatabaseView view() const;
  const std::vector<std::uint8_t>& codes() const { return codes_; }
  const std::vector<float>& scales() const { return scales_; }

 private:
  Storage storage_ = Storage::Float32;
  std::size_t count_ = 0;
  std::size_t dim_ = 0;
  std::vector<std::uint8_t> codes_;
  std::vector<float> scales_;
};

// Encoders, also used for queries. Binary: bit j (LSB first within byte j / 8) is x[j] > 0.
void encode_float16(const float* x, std::size_t n, std::size_t d, std::uint16_t* out);
// Symmetric per-row int8: scale = max|x| / 127, code = round(x / scale); scale 0 rows stay 0.
void quantize_int8(const float* x, std::size_t n, std::size_t d, std::int8_t* codes, float* scales);
void binarize(const float* x, std::size_t n, std::size_t d, std::uint8_t* out);
std::size_t binary_bytes(std::size_t dim);

// Optional linear projection applied to float queries before search:
// q' = normalise((q - mean) * matrix), matrix is in_dim x out_dim row-major.
struct Projection {
  const float* matrix = nullptr;
  const float* mean = nullptr;  // optional, in_dim values
  std::size_t in_dim = 0;
  std::size_t out_dim = 0;
  bool enabled() const { return matrix != nullptr; }
};

struct SearchOptions {
  std::size_t k = 10;
  int num_threads = 0;  // 0: all cores
  Projection projection;
  // Two-stage search: the database above gives a shortlist of this many
  // candidates, re-ranked exactly against `rerank` (the same places and dimension in
  // float32, float16 or int8).
  std::size_t shortlist = 0;
  const DatabaseView* rerank = nullptr;
  // Position prior: with restrict_to_candidates, only the num_candidates places at
  // `candidates` take part (ids sorted, distinct, < count; from PositionGrid::within).
  // Results then hold min(k, num_candidates) entries per query: none when no place lies
  // within the radius.
  bool restrict_to_candidates = false;
  const std::uint32_t* candidates = nullptr;
  std::size_t num_candidates = 0;
  // PQ maps with a coarse index (vpr/pq.hpp): lists scanned per query (0: all).
  std::size_t nprobe = 0;
};

// Results of nq queries: row j holds min(k, count) entries sorted by score
// descending, ties broken by the lower index.
struct SearchResults {
  std::size_t num_queries = 0;
  std::size_t k = 0;
  std::vector<std::int64_t> ids;  // num_queries * k
  std::vector<float> scores;      // num_queries * k
};

// Scores: Float32/Float16 inner product; Int8 the dequantised inner product;
// Binary 1 - 2 * hamming / dim. Queries are float32 rows of dimension
// projection.in_dim (if a projection is set) or db.dim.
// Throws std::invalid_argument for bad arguments (never reads out of bounds).
SearchResults search(const DatabaseView& db, const float* queries, std::size_t num_queries,
                     std::size_t query_dim, const SearchOptions& options);

// Int8 database searched with already-quantised int8 queries (scale per query).
SearchResults search_int8(const DatabaseView& db, const std::int8_t* queries,
                          const float* query_scales, std::size_t num_queries, std::size_t query_dim,
                          const SearchOptions& options);

// Number of worker threads used for num_threads (0 -> hardware concurrency).
int resolve_threads(int num_threads);

}  // namespace vpr
