// Sparse uniform grid over place positions (vpr/positions.hpp).
#include "vpr/positions.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>

namespace vpr {
namespace {

// Sorts distinct place ids below `count`. Many of them (a wide radius, ids that do not
// follow positions) are marked in a bitmap over every place and read back in order: linear
// in the places, where std::sort of 85k scattered ids out of 1M took about 4 ms.
void sort_ids(std::vector<std::uint32_t>& ids, std::size_t count) {
  if (ids.size() < count / 256 + 64) {
    std::sort(ids.begin(), ids.end());
    return;
  }
  std::vector<std::uint64_t> bits((count + 63) / 64, 0);
  for (const std::uint32_t id : ids) bits[id >> 6] |= std::uint64_t{1} << (id & 63);
  ids.clear();
  for (std::size_t w = 0; w < bits.size(); ++w) {
    for (std::uint64_t word = bits[w]; word != 0; word &= word - 1) {
      ids.push_back(
          static_cast<std::uint32_t>(w * 64 + static_cast<unsigned>(__builtin_ctzll(word))));
    }
  }
}

constexpr double kEarthRadiusM = 6371008.8;  // mean radius (IUGG)
constexpr double kDegToRad = 3.14159265358979323846 / 180.0;
constexpr std::size_t kTargetPerCell = 8;
// A radius that spans more cells than this is answered by a pass over every position.

}  // namespace

void PositionGrid::to_plane(double a, double b, double* x, double* y) const {
  if (kind_ == PositionKind::LatLon) {
    *x = kEarthRadiusM * b * kDegToRad * lat0_cos_;
    *y = kEarthRadiusM * a * kDegToRad;
  } else {
    *x = a;
    *y = b;
  }
}

std::int64_t PositionGrid::key(double x, double y) const {
  // Stored places lie in the box, so their cells are 0 .. 2^31 - 1 (the cell size keeps
  // it so); the clamp only guards the conversion.
  auto cell = [&](double v, double lo) {
    const double c = std::floor((v - lo) / cell_);
    return static_cast<std::int64_t>(std::clamp(c, 0.0, 2147483647.0));
  };
  return (cell(x, min_x_) << 32) | cell(y, min_y_);
}

PositionGrid::PositionGrid(const double* positions, std::size_t count, PositionKind kind)
    : kind_(kind) {
  if (count == 0 || positions == nullptr) throw std::invalid_argument("no positions");
  for (std::size_t i = 0; i < 2 * count; ++i) {
    if (!std::isfinite(positions[i])) {
      throw std::invalid_argument("position of place " + std::to_string(i / 2) + " is not finite");
    }
  }
  if (kind == PositionKind::LatLon) {
    double lat = 0.0;
    for (std::size_t i = 0; i < count; ++i) lat += positions[2 * i];
    lat0_cos_ = std::cos(lat / static_cast<double>(count) * kDegToRad);
  }
  xy_.resize(2 * count);
  for (std::size_t i = 0; i < count; ++i) {
    to_plane(positions[2 * i], positions[2 * i + 1], &xy_[2 * i], &xy_[2 * i + 1]);
  }
  double max_x = xy_[0], max_y = xy_[1];
  min_x_ = xy_[0];
  min_y_ = xy_[1];
  for (std::size_t i = 1; i < count; ++i) {
    min_x_ = std::min(min_x_, xy_[2 * i]);
    max_x = std::max(max_x, xy_[2 * i]);
    min_y_ = std::min(min_y_, xy_[2 * i + 1]);
    max_y = std::max(max_y, xy_[2 * i + 1]);
  }
  const double extent = std::max({max_x - min_x_, max_y - min_y_, 1e-9});
  if (!std::isfinite(extent)) {
    throw std::invalid_argument("positions span more than a float64 can measure");
  }
  // Start from the cell of an even spread over the bounding box, then halve while the
  // occupied cells hold more than kTargetPerCell places on average (a route fills a thin
  // band of the box, not the box). At most 2^31 cells per axis.
  cell_ = std::max(extent / std::sqrt(static_cast<double>(count) / kTargetPerCell + 1.0),
                   extent / 2147483647.0);
  std::vector<std::uint32_t> order(count);
  std::iota(order.begin(), order.end(), 0u);
  for (int step = 0;; ++step) {
    keys_.resize(count);
    for (std::size_t i = 0; i < count; ++i) keys_[i] = key(xy_[2 * i], xy_[2 * i + 1]);
    std::vector<std::int64_t> sorted = keys_;
    std::sort(sorted.begin(), sorted.end());
    const auto cells =
        static_cast<std::size_t>(std::unique(sorted.begin(), sorted.end()) - sorted.begin());
    if (count <= kTargetPerCell * cells || step >= 20 || cell_ / 2.0 < extent / 2147483647.0) {
      break;
    }
    cell_ /= 2.0;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return keys_[a] < keys_[b]; });
  std::vector<std::int64_t> keys(count);
  for (std::size_t i = 0; i < count; ++i) keys[i] = keys_[order[i]];
  keys_ = std::move(keys);
  // Coordinates in entry order too: a query reads the entries of its cells one after
  // another, where reading them by place id was a cache miss per place when ids do not
  // follow positions (1M places, 85k inside: 9-11 ms against 1.4 ms in route order).
  std::vector<double> xy(2 * count);
  for (std::size_t i = 0; i < count; ++i) {
    xy[2 * i] = xy_[2 * order[i]];
    xy[2 * i + 1] = xy_[2 * order[i] + 1];
  }
  xy_ = std::move(xy);
  ids_ = std::move(order);
}

std::vector<std::uint32_t> PositionGrid::within(double a, double b, double radius) const {
  if (!std::isfinite(a) || !std::isfinite(b)) {
    throw std::invalid_argument("the position prior's centre must be finite");
  }
  if (!std::isfinite(radius) || radius < 0.0) {
    throw std::invalid_argument("the position prior's radius must be finite and >= 0");
  }
  std::vector<std::uint32_t> out;
  if (xy_.empty()) return out;
  double x = 0.0, y = 0.0;
  to_plane(a, b, &x, &y);
  const double r2 = radius * radius;
  auto inside = [&](std::size_t entry) {  // xy_ is in entry order (grid order)
    const double dx = xy_[2 * entry] - x, dy = xy_[2 * entry + 1] - y;
    return dx * dx + dy * dy <= r2;
  };
  const double span =
      std::floor((x + radius - min_x_) / cell_) - std::floor((x - radius - min_x_) / cell_) + 1.0;
  const double span_y =
      std::floor((y + radius - min_y_) / cell_) - std::floor((y - radius - min_y_) / cell_) + 1.0;
  const double fx0 = std::floor((x - radius - min_x_) / cell_);
  const double fy0 = std::floor((y - radius - min_y_) / cell_);
  // Many cells (a large radius), or a centre so far outside the box that its cell numbers
  // leave the integers (or are not numbers): one pass over every position instead.
  const bool cells_ok =
      span < 4.0e9 && span_y < 4.0e9 && std::fabs(fx0) < 4.0e9 && std::fabs(fy0) < 4.0e9;
  if (!cells_ok) {
    for (std::size_t e = 0; e < count(); ++e) {
      if (inside(e)) out.push_back(ids_[e]);
    }
    sort_ids(out, count());
    return out;
  }
  const auto cx0 = static_cast<std::int64_t>(fx0);
  const auto cy0 = static_cast<std::int64_t>(fy0);
  // Stored places have cells >= 0: cells left of or below the box hold none. Keys sort by
  // column, then row, so one walk from the first cell of the query's box to its last
  // visits the entries in range, skipping ahead (binary search) past rows outside it: the
  // cost is the entries inside plus two searches per non-empty column, however small the
  // cells (a route along a line has tiny cells).
  const std::int64_t cx_lo = std::max<std::int64_t>(cx0, 0);
  // Stored cells are at most 2^31 - 1 (key()), which also keeps the shifts below in range.
  const std::int64_t cx_hi =
      std::min<std::int64_t>(cx0 + static_cast<std::int64_t>(span) - 1, 2147483647);
  const std::int64_t cy_lo = std::max<std::int64_t>(cy0, 0);
  const std::int64_t cy_hi =
      std::min<std::int64_t>(cy0 + static_cast<std::int64_t>(span_y) - 1, 2147483647);
  if (cx_hi >= cx_lo && cy_hi >= cy_lo) {
    const std::int64_t last = (cx_hi << 32) | cy_hi;
    auto it = std::lower_bound(keys_.begin(), keys_.end(), (cx_lo << 32) | cy_lo);
    while (it != keys_.end() && *it <= last) {
      const std::int64_t cx = *it >> 32;
      const std::int64_t cy = *it & 0xFFFFFFFF;
      if (cy < cy_lo) {
        it = std::lower_bound(it, keys_.end(), (cx << 32) | cy_lo);
      } else if (cy > cy_hi) {
        if (cx >= cx_hi) break;
        it = std::lower_bound(it, keys_.end(), ((cx + 1) << 32) | cy_lo);
      } else {
        const auto entry = static_cast<std::size_t>(it - keys_.begin());
        if (inside(entry)) out.push_back(ids_[entry]);
        ++it;
      }
    }
  }
  sort_ids(out, count());
  return out;
}

}  // namespace vpr
