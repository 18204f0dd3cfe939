# Cross toolchain for Debian's g++-aarch64-linux-gnu; tests run under qemu-user.
#   cmake -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DVPR_AARCH64_MARCH=armv8.2-a+dotprod -DVPR_QEMU_CPU=cortex-a76 ...
# Defaults target the Raspberry Pi 4 (armv8-a, Cortex-A72). Never use qemu's
# `-cpu max`: it mis-emulates some int8 instructions.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

set(VPR_AARCH64_MARCH "armv8-a" CACHE STRING
  "Baseline -march for aarch64 (armv8-a: Pi 4; armv8.2-a+dotprod: Pi 5)")
set(VPR_QEMU_CPU "cortex-a72" CACHE STRING
  "qemu-aarch64 CPU model for ctest (cortex-a72: Pi 4; cortex-a76: Pi 5)")

set(CMAKE_C_FLAGS_INIT "-march=${VPR_AARCH64_MARCH}")
set(CMAKE_CXX_FLAGS_INIT "-march=${VPR_AARCH64_MARCH}")

# Debian's multiarch sysroot for the cross compiler.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Dynamic aarch64 binaries need the target's loader and libraries: -L.
set(CMAKE_CROSSCOMPILING_EMULATOR
  qemu-aarch64-static;-L;/usr/aarch64-linux-gnu;-cpu;${VPR_QEMU_CPU})
