// PQ fast-scan search (vpr/pq.hpp): query tables, block scans over threads or IVF lists,
// the position prior and exact re-ranking of a shortlist.
#include "vpr/pq.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>

#include "scan.hpp"
#include "vpr/kernels.hpp"

namespace vpr {
namespace {

using detail::Hit;
using detail::TopK;

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument("PQ index: " + what); }

// Blocks a kernel call scans before the top-k sees them (2048 slots: 4 KB of sums).
constexpr std::size_t kChunkBlocks = 64;
// A scan uses a second thread only from this many code bytes per thread (matcher.cpp says
// why); threads take chunks as they come (run_chunks).
constexpr std::size_t kMinBytesPerThread = std::size_t{4} << 20;

std::int32_t sum_threshold(const TopK& top, const PqTable& t) {
  const double v = std::floor((static_cast<double>(top.worst_score()) - t.bias) / t.scale) - 1.0;
  return v < -1.0 ? -1 : v > 65536.0 ? 65536 : static_cast<std::int32_t>(v);
}

// Adds the places of `nblocks` blocks from `first_block` to `top`, scored by `table`; with
// `slot_mask` (one byte per slot), only slots whose byte is set (the others cost no more
// than a slot under the threshold).
void scan_blocks(const PqView& pq, const PqTable& t, std::size_t first_block, std::size_t nblocks,
                 TopK& top, std::vector<std::uint16_t>& sums,
                 const std::uint8_t* slot_mask = nullptr) {
  const KernelTable& kt = active_kernels();
  const std::size_t block_bytes = pq.m * 16;
  sums.resize(kChunkBlocks * kPqBlock);
  for (std::size_t b = first_block; b < first_block + nblocks; b += kChunkBlocks) {
    const std::size_t nb = std::min(kChunkBlocks, first_block + nblocks - b);
    kt.pq4_scan(t.table.data(), pq.m, pq.codes + b * block_bytes, nb, sums.data());
    // Integer threshold: a slot whose sum is below it cannot enter a full top-k. It is
    // rounded down one more step (a superset): insert() decides exactly, ties by id.
    std::int32_t threshold = top.full() ? sum_threshold(top, t) : -1;
    const std::size_t n = nb * kPqBlock;
    const std::uint8_t* mask = slot_mask != nullptr ? slot_mask + b * kPqBlock : nullptr;
    std::int32_t any = 0;
    if (mask != nullptr) {  // masked slots never pass, whatever the threshold
      for (std::size_t i = 0; i < n; ++i) {
        any |= (static_cast<std::int32_t>(sums[i]) >= threshold) & (mask[i] != 0);
      }
    } else {
      for (std::size_t i = 0; i < n; ++i) any |= static_cast<std::int32_t>(sums[i]) >= threshold;
    }
    if (!any) continue;
    for (std::size_t i = 0; i < n; ++i) {
      // A block's 32 slots are tested at once first (vectorised): with a mask or a long
      // shortlist, chunks pass the test above for one or two slots, and a slot-by-slot
      // pass over all 2048 cost more than the kernel. Measured (Intel, 1M places, m = 64,
      // shortlist 100): no prior 1.58 -> 1.43 ms, 11k scattered places 2.33 -> 1.89 ms.
      if (i % kPqBlock == 0) {
        std::int32_t group = 0;
        for (std::size_t g = i; g < i + kPqBlock; ++g) {
          group |=
              (static_cast<std::int32_t>(sums[g]) >= threshold) & (mask == nullptr || mask[g] != 0);
        }
        if (!group) {
          i += kPqBlock - 1;
          continue;
        }
      }
      if (static_cast<std::int32_t>(sums[i]) < threshold) continue;
      if (mask != nullptr && mask[i] == 0) continue;
      const std::size_t slot = b * kPqBlock + i;
      std::uint32_t place;
      if (pq.slot_places != nullptr) {
        place = pq.slot_places[slot];
        if (place == kPqNoPlace) continue;
      } else {
        if (slot >= pq.count) continue;
        place = static_cast<std::uint32_t>(slot);
      }
      const float score = t.bias + t.scale * static_cast<float>(sums[i]);
      top.insert({score, static_cast<std::int64_t>(place)});
      if (top.full()) threshold = sum_threshold(top, t);
    }
  }
}

// Approximate score of one place (the position prior: few places, any order).
float score_place(const PqView& pq, const PqTable& t, std::uint32_t place) {
  const std::size_t slot = pq.place_slots != nullptr ? pq.place_slots[place] : place;
  const std::uint8_t* block = pq.codes + (slot / kPqBlock) * pq.m * 16;
  const std::size_t i = slot % kPqBlock;
  unsigned acc = 0;
  for (std::size_t j = 0; j < pq.m; ++j) {
    const std::uint8_t byte = block[j * 16 + (i & 15)];
    acc += t.table[j * 16 + (i < 16 ? (byte & 15u) : (byte >> 4))];
  }
  return t.bias + t.scale * static_cast<float>(acc);
}

void scan_ranges(const PqView& pq, const PqTable& t,
                 const std::vector<std::pair<std::size_t, std::size_t>>& ranges,
                 const SearchOptions& options, TopK& top, const std::uint8_t* slot_mask);

// A candidate block holding at least this many candidates is scanned whole by the kernel;
// sparser ones are scored place by place from the block's bytes.
constexpr std::size_t kDenseBlock = 6;
// Candidates of an IVF map are put in slot order through a bitmap over all slots once
// they number at least total slots / this: zeroing and walking the bitmap costs about a
// word per 64 slots, a comparison sort about log2(n) steps per candidate, and at 1M slots
// the sort of 5.6k-11k candidates was a third of the prior's time (docs/pq.md).
constexpr std::size_t kSlotsPerCandidateForBitmap = 1024;
// Candidate blocks prefetched ahead of the one being scored (each block is m x 16 bytes,
// and one place's codes touch every 64-byte line of it).
constexpr std::size_t kPrefetchBlocksAhead = 4;

// Top-m of the candidate places (the position prior). Candidates are grouped by code
// block, in slot order: places along a route are mostly consecutive, so their blocks are
// dense and the kernel scans them; places scattered over the map cost one block read each,
// prefetched a few blocks ahead (one place's codes span the whole block).
TopK score_candidates(const PqView& pq, const PqTable& t, const std::uint32_t* candidates,
                      std::size_t n, std::size_t m, const SearchOptions& options) {
  const auto slot_of = [&](std::uint32_t p) -> std::uint32_t {
    return pq.place_slots != nullptr ? pq.place_slots[p] : p;
  };
  TopK top(m);
  // Scattered candidates in many blocks: reading a block out of order cost about 3x a
  // block of the sequential scan (Zen 3, 1M places: docs/pq.md), so past a quarter of the
  // blocks one full scan that keeps only the candidates is cheaper. The blocks are counted
  // on a bitmap, so that the full scan (which needs only a mask by slot) sorts nothing.
  std::vector<bool> block_seen(pq.blocks, false);
  std::size_t blocks_hit = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t b = slot_of(candidates[i]) / kPqBlock;
    if (!block_seen[b]) {
      block_seen[b] = true;
      ++blocks_hit;
    }
  }
  if (4 * blocks_hit > pq.blocks) {
    std::vector<std::uint8_t> mask(pq.blocks * kPqBlock, 0);  // by slot
    for (std::size_t i = 0; i < n; ++i) mask[slot_of(candidates[i])] = 1;
    scan_ranges(pq, t, {{0, pq.blocks}}, options, top, mask.data());
    return top;
  }
  std::vector<std::pair<std::uint32_t, std::uint32_t>> slots(n);  // (slot, place), slot order
  const std::size_t total_slots = pq.blocks * kPqBlock;
  if (pq.place_slots == nullptr) {  // flat: the candidates' order is already slot order
    for (std::size_t i = 0; i < n; ++i) slots[i] = {candidates[i], candidates[i]};
  } else if (n * kSlotsPerCandidateForBitmap < total_slots) {
    for (std::size_t i = 0; i < n; ++i) slots[i] = {slot_of(candidates[i]), candidates[i]};
    std::sort(slots.begin(), slots.end());
  } else {
    // Many candidates: sorted through a bitmap over the slots (a word per 64 slots), not a
    // comparison sort (85k of 1M places: std::sort took milliseconds, more than the scan).
    std::vector<std::uint64_t> bits((total_slots + 63) / 64, 0);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t s = slot_of(candidates[i]);
      bits[s / 64] |= std::uint64_t{1} << (s % 64);
    }
    std::size_t out = 0;
    for (std::size_t w = 0; w < bits.size(); ++w) {
      for (std::uint64_t word = bits[w]; word != 0; word &= word - 1) {
        const auto s =
            static_cast<std::uint32_t>(w * 64 + static_cast<unsigned>(__builtin_ctzll(word)));
        const std::uint32_t place = pq.slot_places[s];
        // Views filled by hand may skip check_values(): a padding slot or a place map
        // that is not the inverse would read out of bounds or drop candidates.
        if (place == kPqNoPlace || out == n) bad("slot maps are not inverse (call check_values)");
        slots[out++] = {s, place};
      }
    }
    if (out != n) bad("slot maps are not inverse (call check_values)");
  }
  // Group starts: [starts[g], starts[g + 1]) share a block.
  std::vector<std::size_t> starts;
  for (std::size_t i = 0; i < n; ++i) {
    if (i == 0 || slots[i].first / kPqBlock != slots[i - 1].first / kPqBlock) starts.push_back(i);
  }
  starts.push_back(n);
  const std::size_t block_bytes = pq.m * 16;
  const KernelTable& kt = active_kernels();
  std::uint16_t sums[kPqBlock];
  for (std::size_t g = 0; g + 1 < starts.size(); ++g) {
    if (g + kPrefetchBlocksAhead + 1 < starts.size()) {
      const std::uint8_t* ahead =
          pq.codes + (slots[starts[g + kPrefetchBlocksAhead]].first / kPqBlock) * block_bytes;
      for (std::size_t line = 0; line < block_bytes; line += 64) __builtin_prefetch(ahead + line);
    }
    const std::size_t b = slots[starts[g]].first / kPqBlock;
    const std::size_t count = starts[g + 1] - starts[g];
    if (count >= kDenseBlock)
      kt.pq4_scan(t.table.data(), pq.m, pq.codes + b * block_bytes, 1, sums);
    for (std::size_t i = starts[g]; i < starts[g + 1]; ++i) {
      const float score =
          count >= kDenseBlock
              ? t.bias + t.scale * static_cast<float>(sums[slots[i].first % kPqBlock])
              : score_place(pq, t, slots[i].second);
      top.insert({score, static_cast<std::int64_t>(slots[i].second)});
    }
  }
  return top;
}

// Every list, best first: centroids by score against the query, ties by the lower list.
std::vector<std::size_t> probe_order(const PqView& pq, const float* query) {
  const std::size_t nlist = pq.ivf.nlist;
  std::vector<float> scores(nlist);
  active_kernels().dot_f32(query, pq.ivf.centroids, nlist, pq.dim, scores.data());
  detail::check_finite(scores.data(), nlist, "IVF centroid scores (non-finite centroids)");
  std::vector<std::size_t> order(nlist);
  for (std::size_t l = 0; l < nlist; ++l) order[l] = l;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  return order;
}

// Block ranges [begin, end) of lists order[first, last), in file order.
std::vector<std::pair<std::size_t, std::size_t>> list_ranges(const PqView& pq,
                                                             const std::vector<std::size_t>& order,
                                                             std::size_t first, std::size_t last) {
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  for (std::size_t i = first; i < last; ++i) {
    const auto b = static_cast<std::size_t>(pq.ivf.list_blocks[order[i]]);
    const auto e = static_cast<std::size_t>(pq.ivf.list_blocks[order[i] + 1]);
    if (e > b) ranges.emplace_back(b, e);
  }
  std::sort(ranges.begin(), ranges.end());
  return ranges;
}

// Top-k over block ranges, laid end to end and cut into chunks that threads take as they
// come (run_chunks); each thread keeps its own top-k, merged into `top`.
void scan_ranges(const PqView& pq, const PqTable& t,
                 const std::vector<std::pair<std::size_t, std::size_t>>& ranges,
                 const SearchOptions& options, TopK& top, const std::uint8_t* slot_mask) {
  std::vector<std::size_t> starts;  // where each range begins, ranges laid end to end
  std::size_t total = 0;
  for (const auto& r : ranges) {
    starts.push_back(total);
    total += r.second - r.first;
  }
  if (total == 0) return;
  const std::size_t block_bytes = pq.m * 16;
  const std::size_t threads = detail::scan_threads(
      total, options.num_threads, std::max<std::size_t>(1, kMinBytesPerThread / block_bytes));
  const std::size_t per_chunk = std::max<std::size_t>(
      kChunkBlocks, detail::chunk_bytes(total * block_bytes, threads) / block_bytes);
  const std::size_t chunks = (total + per_chunk - 1) / per_chunk;
  std::vector<TopK> partial(threads, top);
  std::vector<std::vector<std::uint16_t>> sums(threads);
  detail::run_chunks(threads, chunks, [&](std::size_t slot, std::size_t c) {
    const std::size_t lo = c * per_chunk;
    const std::size_t hi = std::min(total, lo + per_chunk);
    // The last range that begins at or before lo, then on through the ranges up to hi.
    std::size_t r = static_cast<std::size_t>(std::upper_bound(starts.begin(), starts.end(), lo) -
                                             starts.begin() - 1);
    for (; r < ranges.size() && starts[r] < hi; ++r) {
      const std::size_t len = ranges[r].second - ranges[r].first;
      const std::size_t b = std::max(lo, starts[r]);
      const std::size_t e = std::min(hi, starts[r] + len);
      if (b < e) {
        scan_blocks(pq, t, ranges[r].first + (b - starts[r]), e - b, partial[slot], sums[slot],
                    slot_mask);
      }
    }
  });
  top = std::move(partial[0]);
  for (std::size_t th = 1; th < threads; ++th) top.merge(partial[th]);
}

// Top-k of one query: every block, or the nprobe best lists. Lists that hold fewer than k
// places between them are followed by the next nprobe, and so on, so that a search always
// returns min(k, count) places.
TopK scan_query(const PqView& pq, const PqTable& t, const float* query, std::size_t k,
                const SearchOptions& options) {
  TopK top(k);
  const std::size_t nlist = pq.ivf.nlist;
  if (nlist == 0 || options.nprobe == 0 || options.nprobe >= nlist) {
    scan_ranges(pq, t, {{0, pq.blocks}}, options, top, nullptr);
    return top;
  }
  const std::vector<std::size_t> order = probe_order(pq, query);
  for (std::size_t first = 0; first < nlist && !top.full(); first += options.nprobe) {
    scan_ranges(pq, t, list_ranges(pq, order, first, std::min(nlist, first + options.nprobe)),
                options, top, nullptr);
  }
  return top;
}

}  // namespace

std::vector<std::uint8_t> pack_pq4_codes(const std::uint8_t* codes, std::size_t n, std::size_t m) {
  if (n > 0 && codes == nullptr) bad("codes are null");
  const std::size_t blocks = (n + kPqBlock - 1) / kPqBlock;
  std::vector<std::uint8_t> out(blocks * m * 16, 0);
  for (std::size_t p = 0; p < n; ++p) {
    std::uint8_t* block = out.data() + (p / kPqBlock) * m * 16;
    const std::size_t i = p % kPqBlock;
    for (std::size_t j = 0; j < m; ++j) {
      const std::uint8_t c = codes[p * m + j];
      if (c >= kPqCentroids) bad("a 4-bit code above 15 (place " + std::to_string(p) + ")");
      block[j * 16 + (i & 15)] |= static_cast<std::uint8_t>(i < 16 ? c : c << 4);
    }
  }
  return out;
}

void PqView::validate() const {
  if (count == 0) bad("no places");
  if (count >= kPqNoPlace) bad("too many places");
  if (m < 2 || m > kPqMaxM || m % 2 != 0) {
    bad("the sub-quantizer count must be even, 2 to 256, not " + std::to_string(m));
  }
  if (dim == 0 || dim % m != 0) {
    bad("dimension " + std::to_string(dim) + " is not a multiple of the sub-quantizer count " +
        std::to_string(m));
  }
  if (codebooks == nullptr || codes == nullptr) bad("codebooks or codes are null");
  if (ivf.nlist == 0) {
    if (blocks != (count + kPqBlock - 1) / kPqBlock) bad("block count does not match the places");
    if (slot_places != nullptr || place_slots != nullptr) bad("slot maps without a coarse index");
  } else {
    if (ivf.centroids == nullptr || ivf.list_blocks == nullptr) bad("IVF lists are null");
    if (slot_places == nullptr || place_slots == nullptr) bad("IVF without slot maps");
    if (blocks < (count + kPqBlock - 1) / kPqBlock) bad("fewer slots than places");
  }
}

void PqView::check_values() const {
  validate();
  detail::check_finite(codebooks, m * kPqCentroids * sub_dim(), "PQ codebooks");
  if (ivf.nlist == 0) return;
  detail::check_finite(ivf.centroids, ivf.nlist * dim, "IVF centroids");
  if (ivf.list_blocks[0] != 0) bad("the first IVF list does not start at block 0");
  for (std::size_t l = 0; l < ivf.nlist; ++l) {
    if (ivf.list_blocks[l + 1] < ivf.list_blocks[l]) bad("IVF list offsets decrease");
  }
  if (ivf.list_blocks[ivf.nlist] != blocks) bad("IVF lists do not cover the blocks");
  const std::vector<std::uint32_t> inverse = invert_slots(slot_places, blocks * kPqBlock, count);
  for (std::size_t p = 0; p < count; ++p) {
    if (place_slots[p] != inverse[p]) bad("slot maps are not inverse of each other");
  }
}

std::vector<std::uint32_t> invert_slots(const std::uint32_t* slot_places, std::size_t slots,
                                        std::size_t count) {
  std::vector<std::uint32_t> place_slots(count, kPqNoPlace);
  for (std::size_t s = 0; s < slots; ++s) {
    const std::uint32_t p = slot_places[s];
    if (p == kPqNoPlace) continue;
    if (p >= count)
      bad("slot " + std::to_string(s) + " names place " + std::to_string(p) + " of " +
          std::to_string(count));
    if (place_slots[p] != kPqNoPlace) bad("place " + std::to_string(p) + " has two slots");
    place_slots[p] = static_cast<std::uint32_t>(s);
  }
  for (std::size_t p = 0; p < count; ++p) {
    if (place_slots[p] == kPqNoPlace) bad("place " + std::to_string(p) + " has no slot");
  }
  return place_slots;
}

PqTable pq_query_table(const PqView& pq, const float* query) {
  const std::size_t ds = pq.sub_dim();
  std::vector<float> lut(pq.m * kPqCentroids);
  for (std::size_t j = 0; j < pq.m; ++j) {
    for (std::size_t c = 0; c < kPqCentroids; ++c) {
      const float* centroid = pq.codebooks + (j * kPqCentroids + c) * ds;
      float s = 0.0f;
      for (std::size_t t = 0; t < ds; ++t) s += query[j * ds + t] * centroid[t];
      lut[j * kPqCentroids + c] = s;
    }
  }
  // A view that skipped check_values() may hold non-finite codebooks: refuse them here,
  // before a NaN reaches an integer conversion.
  detail::check_finite(lut.data(), lut.size(), "PQ query tables (non-finite codebooks)");
  // One scale for every sub-quantizer (their sums must be comparable), an offset each: the
  // widest sub-space's range spans 0..255. In double: two finite floats can differ by more
  // than FLT_MAX, and a float range of inf would make the quantized entries NaN.
  PqTable t;
  t.table.resize(lut.size());
  std::vector<double> low(pq.m);
  double range = 0.0;
  double bias = 0.0;
  for (std::size_t j = 0; j < pq.m; ++j) {
    const float* row = lut.data() + j * kPqCentroids;
    const auto [mn, mx] = std::minmax_element(row, row + kPqCentroids);
    low[j] = *mn;
    range = std::max(range, static_cast<double>(*mx) - *mn);
    bias += low[j];
  }
  // A range too narrow for a normal float scale quantizes to one level: every entry 0.
  const double scale = range / 255.0 >= std::numeric_limits<float>::min() ? range / 255.0 : 1.0;
  // Every score a scan forms, bias + scale * sum (sum <= 255 * m), must be a finite float.
  const double widest = std::abs(bias) + scale * 255.0 * static_cast<double>(pq.m);
  if (!(widest < static_cast<double>(std::numeric_limits<float>::max()))) {
    bad("query scores exceed the float range (codebook values too large): rebuild the map");
  }
  t.scale = static_cast<float>(scale);
  t.bias = static_cast<float>(bias);
  for (std::size_t j = 0; j < pq.m; ++j) {
    for (std::size_t c = 0; c < kPqCentroids; ++c) {
      const double v = std::round((lut[j * kPqCentroids + c] - low[j]) / scale);
      t.table[j * kPqCentroids + c] = static_cast<std::uint8_t>(std::clamp(v, 0.0, 255.0));
    }
  }
  return t;
}

SearchResults search_pq(const PqView& pq, const float* queries, std::size_t num_queries,
                        std::size_t query_dim, const SearchOptions& options) {
  pq.validate();
  if (options.k == 0) throw std::invalid_argument("k must be at least 1");
  resolve_threads(options.num_threads);
  const bool two_stage = options.rerank != nullptr && options.shortlist > 0;
  if (options.rerank != nullptr) detail::check_rerank(*options.rerank, pq.count, pq.dim);
  if (options.restrict_to_candidates) {
    detail::check_candidates(options.candidates, options.num_candidates, pq.count);
  }
  // The queries as the float32 rows a flat float32 map of this dimension would scan
  // (projection, normalisation, value checks); no codes are read through this view.
  DatabaseView shape;
  shape.storage = Storage::Float32;
  shape.count = pq.count;
  shape.dim = pq.dim;
  const detail::EncodedQueries q =
      detail::encode_queries(shape, queries, num_queries, query_dim, options.projection);
  const std::size_t places = options.restrict_to_candidates ? options.num_candidates : pq.count;
  const std::size_t k = std::min(options.k, places);
  const std::size_t m = two_stage ? std::min(std::max(options.shortlist, k), places) : k;
  std::vector<TopK> tops;
  tops.reserve(num_queries);
  for (std::size_t j = 0; j < num_queries; ++j) {
    const float* query = q.floats.data() + j * pq.dim;
    const PqTable table = pq_query_table(pq, query);
    if (m == 0) {
      tops.emplace_back(0);
    } else if (options.restrict_to_candidates) {
      tops.push_back(
          score_candidates(pq, table, options.candidates, options.num_candidates, m, options));
    } else {
      tops.push_back(scan_query(pq, table, query, m, options));
    }
  }
  if (two_stage && m > 0) return detail::rerank(*options.rerank, q.floats, tops, k);
  return detail::collect(tops, k);
}

}  // namespace vpr
