// Product-quantized search ("fast scan"): each place is m sub-vectors of dim / m values,
// each replaced by the index (4 bits) of the nearest of 16 centroids in its sub-space, so
// a place costs m / 2 bytes. A query's inner product with every centroid of every
// sub-space is a table of m x 16 values; quantised to uint8 the table for two
// sub-quantizers fits one SIMD register, and a place's approximate score is m table
// look-ups (vpshufb / tbl), 32 places at a time. Optional: a coarse index (IVF) that scans
// only the lists nearest the query, and exact re-ranking of a shortlist against codes the
// map also keeps. Codebooks are trained on the host (vpr_embedded/pq.py); a device only
// reads them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vpr/matcher.hpp"

namespace vpr {

inline constexpr std::size_t kPqBlock = 32;               // places per code block
inline constexpr std::size_t kPqCentroids = 16;           // 4-bit codes
inline constexpr std::size_t kPqMaxM = 256;               // uint16 sums of uint8 tables stay exact
inline constexpr std::uint32_t kPqNoPlace = 0xFFFFFFFFu;  // an IVF list's padding slot

// Block layout: block b holds slots 32 b .. 32 b + 31; for sub-quantizer j it has 16 bytes
// at offset j * 16, byte i holding the code of slot i in its low nibble and that of slot
// i + 16 in its high nibble. One block is m * 16 bytes.
//
// Packs n x m codes (row-major, values 0..15) into ceil(n / 32) blocks; padding slots get
// code 0. Throws std::invalid_argument for a code above 15.
std::vector<std::uint8_t> pack_pq4_codes(const std::uint8_t* codes, std::size_t n, std::size_t m);

// Coarse index over the slots: list l owns blocks [list_blocks[l], list_blocks[l + 1]).
struct IvfLists {
  std::size_t nlist = 0;                       // 0: no coarse index
  const float* centroids = nullptr;            // nlist x dim, compared by inner product
  const std::uint64_t* list_blocks = nullptr;  // nlist + 1 values, first 0, non-decreasing
};

// Non-owning view of a PQ-coded database (numpy buffers or a map file's sections).
struct PqView {
  std::size_t count = 0;                // places
  std::size_t dim = 0;                  // descriptor dimension (after any projection)
  std::size_t m = 0;                    // sub-quantizers: even, <= 256, divides dim
  const float* codebooks = nullptr;     // m x 16 x (dim / m) float32
  const std::uint8_t* codes = nullptr;  // blocks x m x 16 bytes
  std::size_t blocks = 0;               // ceil(count / 32) without IVF
  // Place of each slot (blocks x 32; kPqNoPlace for padding) and slot of each place
  // (count). Both nullptr without IVF: slot i is place i, slots >= count are padding.
  const std::uint32_t* slot_places = nullptr;
  const std::uint32_t* place_slots = nullptr;
  IvfLists ivf;

  std::size_t sub_dim() const { return m == 0 ? 0 : dim / m; }
  std::size_t code_bytes() const { return blocks * m * 16; }
  // Throws std::invalid_argument if the sizes disagree (O(1) checks).
  void validate() const;
  // validate() plus a pass over the data: finite codebooks and centroids, every place in
  // exactly one slot (slot_places and place_slots inverse of each other), lists in range.
  void check_values() const;
};

// Builds place_slots from slot_places (throws std::invalid_argument unless every place
// < count has exactly one slot).
std::vector<std::uint32_t> invert_slots(const std::uint32_t* slot_places, std::size_t slots,
                                        std::size_t count);

// The uint8 table of one query (dim floats, already projected and normalised): table[j *
// 16 + c] = round((<q_j, centroid_jc> - min_j) / scale), so an approximate score is
// bias + scale * sum of a place's entries.
struct PqTable {
  std::vector<std::uint8_t> table;
  float scale = 1.0f;
  float bias = 0.0f;
};
PqTable pq_query_table(const PqView& pq, const float* query);

// Top-k by approximate (PQ) score, or, with options.rerank and options.shortlist, the
// top-k of a PQ shortlist re-scored exactly against options.rerank (float32, float16 or
// int8 codes of the same places). options.nprobe: IVF lists scanned per query (0: all).
// options.candidates: only those places are scored (the position prior). Queries have
// dimension projection.in_dim (if set) or pq.dim. Throws std::invalid_argument for bad
// arguments.
SearchResults search_pq(const PqView& pq, const float* queries, std::size_t num_queries,
                        std::size_t query_dim, const SearchOptions& options);

}  // namespace vpr
