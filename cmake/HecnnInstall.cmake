# Install rules: headers under <prefix>/include/hecnn/, the static libraries, the programs, the CMake
# package (find_package(hecnn), targets hecnn::common ... hecnn::he) and pkg-config files (hecnn.pc,
# hecnn-ckks.pc). Included from the top-level CMakeLists.txt after src/.
include(CMakePackageConfigHelpers)

set(HECNN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/hecnn"
    CACHE STRING "Where hecnnConfig.cmake is installed, relative to the prefix")
set(HECNN_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
    CACHE STRING "Where hecnn.pc is installed, relative to the prefix")

# Headers, keeping the folders: include/hecnn/ckks/ckks.h, include/hecnn/ring/ntt.h, ...
foreach(dir common ring ckks approx circuits nn he)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/src/${dir}
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/hecnn
          COMPONENT Development
          FILES_MATCHING PATTERN "*.h"
          PATTERN "onnx.h" EXCLUDE  # hecnn_onnx is the program's, not part of the installed library
          PATTERN "*_internal.h" EXCLUDE)  # shared between a library's own .cpp files only
endforeach()
install(FILES ${PROJECT_BINARY_DIR}/generated/hecnn/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/hecnn COMPONENT Development)

# Three export sets, so that a consumer of the scheme alone needs only what the scheme needs:
#   ckks   hecnn::common, hecnn::ring, hecnn::ckks     OpenMP, libsodium
#   approx hecnn::approx, hecnn::approx_he, hecnn::circuits (Eigen is private and header-only: nothing)
#   nn     hecnn::nn, hecnn::he                        nlohmann_json, zlib, HDF5
set(_hecnn_export_ckks hecnn_common hecnn_ring hecnn_ckks)
set(_hecnn_export_approx hecnn_approx hecnn_approx_he hecnn_circuits)
set(_hecnn_export_nn hecnn_nn hecnn_he)
foreach(set ckks approx nn)
  install(TARGETS ${_hecnn_export_${set}}
          EXPORT hecnn_${set}_targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)
  install(EXPORT hecnn_${set}_targets
          FILE hecnn_${set}_targets.cmake
          NAMESPACE hecnn::
          DESTINATION ${HECNN_INSTALL_CMAKEDIR}
          COMPONENT Development)
endforeach()

# The programs. hecnn-train sits next to hecnn, where `hecnn train` looks for it.
install(TARGETS hecnn RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)
if(TARGET hecnn-train)
  install(TARGETS hecnn-train RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)
endif()

# hecnnConfig.cmake and hecnnConfigVersion.cmake. Before 1.0 a minor version may break the API, so
# 0.x only matches the same minor version; from 1.0 on, the same major version.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_hecnn_compat SameMinorVersion)
else()
  set(_hecnn_compat SameMajorVersion)
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/hecnnConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/generated/hecnnConfig.cmake
                              INSTALL_DESTINATION ${HECNN_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/generated/hecnnConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY ${_hecnn_compat})
install(FILES ${PROJECT_BINARY_DIR}/generated/hecnnConfig.cmake
              ${PROJECT_BINARY_DIR}/generated/hecnnConfigVersion.cmake
        DESTINATION ${HECNN_INSTALL_CMAKEDIR} COMPONENT Development)

# pkg-config. The libraries are static unless BUILD_SHARED_LIBS, so their dependencies go in
# Requires (pkg-config --libs without --static must list them); shared, only the public ones do.
# The files are written at install time so that their paths follow `cmake --install --prefix DIR`.
set(HECNN_PC_OPENMP_FLAGS "${OpenMP_CXX_FLAGS}")
if(BUILD_SHARED_LIBS)
  set(HECNN_PC_CKKS_REQUIRES "")
  set(HECNN_PC_CKKS_REQUIRES_PRIVATE "libsodium")
  set(HECNN_PC_REQUIRES "nlohmann_json >= 3")
  set(HECNN_PC_REQUIRES_PRIVATE "zlib, hdf5")
else()
  set(HECNN_PC_CKKS_REQUIRES "libsodium")
  set(HECNN_PC_CKKS_REQUIRES_PRIVATE "")
  set(HECNN_PC_REQUIRES "nlohmann_json >= 3, zlib, hdf5")
  set(HECNN_PC_REQUIRES_PRIVATE "")
endif()
# Two passes: the project's values now, the paths (left as @HECNN_PC_...@ here) at install time.
set(HECNN_PC_PREFIX "@HECNN_PC_PREFIX@")
set(HECNN_PC_LIBDIR "@HECNN_PC_LIBDIR@")
set(HECNN_PC_INCLUDEDIR "@HECNN_PC_INCLUDEDIR@")
foreach(pc hecnn hecnn-ckks)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${pc}.pc.in ${PROJECT_BINARY_DIR}/generated/${pc}.pc.in @ONLY)
endforeach()
configure_file(${PROJECT_SOURCE_DIR}/cmake/HecnnInstallPkgConfig.cmake
               ${PROJECT_BINARY_DIR}/generated/HecnnInstallPkgConfig.cmake COPYONLY)
install(CODE "
  set(HECNN_PC_BINARY_DIR \"${PROJECT_BINARY_DIR}/generated\")
  set(HECNN_PC_LIBDIR_REL \"${CMAKE_INSTALL_LIBDIR}\")
  set(HECNN_PC_INCLUDEDIR_REL \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(HECNN_PC_DIR_REL \"${HECNN_INSTALL_PKGCONFIGDIR}\")
  include(\"${PROJECT_BINARY_DIR}/generated/HecnnInstallPkgConfig.cmake\")
" COMPONENT Development)
