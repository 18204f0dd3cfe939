# vpr_embedded._localizer: the C++ on-device localizer (ExecuTorch runtime + vpr_core) for
# Python, from the same bindings.cpp with VPR_BINDINGS_LOCALIZER. Built when the Python that
# builds the package has executorch installed (the dev install: make install, or
# pip install --no-build-isolation in such an environment) and the header-only Debian
# packages are there; a plain `pip wheel .` (isolated build, no executorch) makes the core
# wheel without it. Never when cross-compiling (the host's executorch is not the target's).
set(VPR_PYTHON_LOCALIZER "AUTO" CACHE STRING "Build vpr_embedded._localizer: AUTO, ON or OFF")
set(_vpr_loc OFF)
if(NOT VPR_PYTHON_LOCALIZER STREQUAL "OFF" AND NOT CMAKE_CROSSCOMPILING
   AND CMAKE_VERSION VERSION_GREATER_EQUAL 3.28)
  if(NOT executorch_DIR)
    execute_process(
      COMMAND "${Python_EXECUTABLE}" -c
              "import executorch, os; print(os.path.join(list(executorch.__path__)[0], 'share', 'cmake'))"
      OUTPUT_VARIABLE _vpr_et_dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _vpr_et_rc
      ERROR_QUIET)
    if(_vpr_et_rc EQUAL 0 AND EXISTS "${_vpr_et_dir}/executorch-config.cmake")
      set(executorch_DIR "${_vpr_et_dir}")
    endif()
  endif()
  set(_vpr_headers TRUE)
  foreach(_h nlohmann/json.hpp stb/stb_image.h CLI/CLI.hpp)
    if(NOT EXISTS "/usr/include/${_h}")
      set(_vpr_headers FALSE)
    endif()
  endforeach()
  if(executorch_DIR AND _vpr_headers)
    set(_vpr_loc ON)
  endif()
endif()
if(VPR_PYTHON_LOCALIZER STREQUAL "ON" AND NOT _vpr_loc)
  message(FATAL_ERROR "VPR_PYTHON_LOCALIZER=ON, but executorch (in the building Python) or the "
                      "headers of nlohmann-json3-dev, libstb-dev and libcli11-dev are missing")
endif()
if(_vpr_loc)
  # The localizer library only (vpr-localize is built by scripts/test_runtime.sh).
  add_subdirectory(runtime "${CMAKE_CURRENT_BINARY_DIR}/runtime" EXCLUDE_FROM_ALL)
endif()
if(_vpr_loc AND TARGET vpr_localizer)
  pybind11_add_module(_localizer MODULE python/bindings.cpp)
  target_compile_definitions(_localizer PRIVATE VPR_BINDINGS_LOCALIZER)
  target_link_libraries(_localizer PRIVATE vpr_localizer)
  # The ExecuTorch shared libraries stay in their wheel: find them there.
  set_target_properties(_localizer PROPERTIES BUILD_RPATH "${EXECUTORCH_RUNTIME_LIBRARY_DIR}"
                                              INSTALL_RPATH "${EXECUTORCH_RUNTIME_LIBRARY_DIR}")
  install(TARGETS _localizer DESTINATION vpr_embedded)
  message(STATUS "vpr_embedded._localizer: built against ${EXECUTORCH_RUNTIME_LIBRARY_DIR}")
else()
  message(STATUS "vpr_embedded._localizer: not built (needs executorch and the runtime headers)")
endif()
