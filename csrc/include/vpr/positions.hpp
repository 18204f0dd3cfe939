// Position prior: the places whose stored position lies within a radius of where the
// robot believes it is (GPS, odometry). A uniform grid over the positions, kept sparse
// (sorted cell keys), so that a route along a thin band costs no empty cells.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vpr/map_file.hpp"

namespace vpr {

class PositionGrid {
 public:
  PositionGrid() = default;
  // positions: count x 2 float64 as the map stores them. LatLon: (latitude, longitude) in
  // degrees, radii in metres (a local equirectangular projection about the mean
  // latitude, exact enough within a city); Utm and others: (x, y), radii in their unit.
  // Throws std::invalid_argument for a non-finite position or none at all.
  PositionGrid(const double* positions, std::size_t count, PositionKind kind);

  // Sorted ids of the places within `radius` of (x, y) (the same units as the stored
  // positions). Throws std::invalid_argument for a negative or non-finite radius or centre.
  std::vector<std::uint32_t> within(double x, double y, double radius) const;

  std::size_t count() const { return xy_.size() / 2; }
  double cell_size() const { return cell_; }

 private:
  void to_plane(double a, double b, double* x, double* y) const;
  std::int64_t key(double x, double y) const;

  PositionKind kind_ = PositionKind::None;
  double lat0_cos_ = 1.0;
  double cell_ = 1.0;
  double min_x_ = 0.0, min_y_ = 0.0;
  std::vector<double> xy_;          // plane coordinates, count x 2, in entry order
  std::vector<std::int64_t> keys_;  // sorted cell keys, one per entry
  std::vector<std::uint32_t> ids_;  // place of each entry (same order as keys_)
};

}  // namespace vpr
