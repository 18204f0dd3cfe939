# `cmake --install`: headers, vpr_core (and vpr_localizer when built), a CMake package
# (find_package(vpr_embedded) -> vpr::core, vpr::localizer) and vpr_embedded.pc.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(VPR_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/vpr_embedded")

install(TARGETS vpr_core EXPORT vpr_embeddedCoreTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}")
install(DIRECTORY csrc/include/vpr DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT vpr_embeddedCoreTargets NAMESPACE vpr:: DESTINATION "${VPR_CMAKE_DIR}")

set(VPR_PACKAGE_HAS_LOCALIZER OFF)
if(TARGET vpr_localizer)
  set(VPR_PACKAGE_HAS_LOCALIZER ON)
  install(TARGETS vpr_localizer EXPORT vpr_embeddedLocalizerTargets
          ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}")
  install(DIRECTORY csrc/runtime/include/vpr DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
  install(EXPORT vpr_embeddedLocalizerTargets NAMESPACE vpr:: DESTINATION "${VPR_CMAKE_DIR}")
endif()

configure_package_config_file(cmake/vpr_embeddedConfig.cmake.in
  "${CMAKE_CURRENT_BINARY_DIR}/vpr_embeddedConfig.cmake" INSTALL_DESTINATION "${VPR_CMAKE_DIR}")
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/vpr_embeddedConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/vpr_embeddedConfig.cmake"
              "${CMAKE_CURRENT_BINARY_DIR}/vpr_embeddedConfigVersion.cmake"
        DESTINATION "${VPR_CMAKE_DIR}")

# pkg-config: the compile definitions say which kernel tables the library holds
# (csrc/include/vpr/kernels.hpp reads them).
get_target_property(_vpr_defs vpr_core INTERFACE_COMPILE_DEFINITIONS)
set(VPR_PC_CFLAGS "")
foreach(_d IN LISTS _vpr_defs)
  string(APPEND VPR_PC_CFLAGS " -D${_d}")
endforeach()
configure_file(cmake/vpr_embedded.pc.in "${CMAKE_CURRENT_BINARY_DIR}/vpr_embedded.pc" @ONLY)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/vpr_embedded.pc"
        DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
