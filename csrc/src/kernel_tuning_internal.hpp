// Internal to vpr_core: the table active_kernels() returns when no level is forced.
#pragma once

#include "vpr/kernels.hpp"

namespace vpr::detail {

// dot_f32, dot_f16 and dot_i8 dispatch per call to the table's variant for the row
// length; the other kernels are those of the detected level. Reads the table on first use.
const KernelTable& tuned_kernels();

}  // namespace vpr::detail
