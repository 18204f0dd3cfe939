// Fuzz builds only: every search uses the scalar kernels (the target is the
// map reader; clang's __builtin_cpu_supports lacks some features simd.cpp asks).
#include "vpr/kernels.hpp"

namespace vpr {
const KernelTable& active_kernels() { return scalar_kernels(); }
}  // namespace vpr
