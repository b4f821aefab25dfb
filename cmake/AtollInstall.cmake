# `cmake --install` installs Atoll's headers and static libraries, a CMake
# package (find_package(atoll CONFIG) gives atoll::atoll and the per-layer
# targets atoll::runtime, atoll::transports, atoll::handlers,
# atoll::supervisors; same-major versions are compatible) with the FindCAF
# module it needs, and a pkg-config file (atoll.pc).
include(CMakePackageConfigHelpers)

set(ATOLL_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/atoll)

install(EXPORT atoll-targets
        NAMESPACE atoll::
        FILE atoll-targets.cmake
        DESTINATION ${ATOLL_INSTALL_CMAKEDIR})

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/atoll-config.cmake.in
  ${PROJECT_BINARY_DIR}/atoll-config.cmake
  INSTALL_DESTINATION ${ATOLL_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/atoll-config-version.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES
          ${PROJECT_BINARY_DIR}/atoll-config.cmake
          ${PROJECT_BINARY_DIR}/atoll-config-version.cmake
          ${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake
        DESTINATION ${ATOLL_INSTALL_CMAKEDIR})

# pkg-config (relocatable: paths relative to the .pc file): Atoll's static libraries in link order, then CAF (Debian ships
# no .pc for it) and the libraries that have one.
file(RELATIVE_PATH ATOLL_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
string(REGEX REPLACE "/$" "" ATOLL_PC_TO_PREFIX "${ATOLL_PC_TO_PREFIX}")
set(ATOLL_PC_DEFINES "")
if(NOT ATOLL_TELEMETRY)
  set(ATOLL_PC_DEFINES " -DATOLL_NO_TELEMETRY")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/atoll.pc.in ${PROJECT_BINARY_DIR}/atoll.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/atoll.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The UBSan suppression a program using Atoll needs under -fsanitize=undefined
# (a defect inside CAF 0.17.6's headers, see the file): share/atoll/sanitizers/.
install(FILES ${PROJECT_SOURCE_DIR}/test/sanitizers/ubsan.supp
        DESTINATION ${CMAKE_INSTALL_DATADIR}/atoll/sanitizers)
