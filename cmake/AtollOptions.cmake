# Build flags for Atoll's own targets. Nothing is set globally: every Atoll
# target links the INTERFACE target atoll_internal, so projects embedding Atoll
# through add_subdirectory keep their own flags.

add_library(atoll_internal INTERFACE)
target_compile_features(atoll_internal INTERFACE cxx_std_17)

target_compile_options(atoll_internal INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-qual
  -Wformat=2 -Wundef -Wimplicit-fallthrough -Wmissing-declarations)
if(ATOLL_WARNINGS_AS_ERRORS)
  target_compile_options(atoll_internal INTERFACE -Werror)
endif()

if(ATOLL_SANITIZERS)
  string(REPLACE "," ";" _atoll_san_list "${ATOLL_SANITIZERS}")
  foreach(_san IN LISTS _atoll_san_list)
    if(NOT _san MATCHES "^(address|undefined|thread|leak)$")
      message(FATAL_ERROR "ATOLL_SANITIZERS: unknown sanitizer '${_san}'")
    endif()
  endforeach()
  if("thread" IN_LIST _atoll_san_list AND "address" IN_LIST _atoll_san_list)
    message(FATAL_ERROR "ATOLL_SANITIZERS: 'thread' cannot be combined with 'address'")
  endif()
  set(_atoll_san_flags -fsanitize=${ATOLL_SANITIZERS} -fno-omit-frame-pointer)
  if("undefined" IN_LIST _atoll_san_list)
    # Every UB check aborts, except `null`, which must stay recoverable so that
    # test/sanitizers/ubsan.supp can silence a defect inside CAF's headers;
    # UBSAN_OPTIONS=halt_on_error=1 (set for every test) still aborts on any
    # unsuppressed report.
    list(APPEND _atoll_san_flags -fno-sanitize-recover=undefined -fsanitize-recover=null)
  endif()
  target_compile_options(atoll_internal INTERFACE ${_atoll_san_flags})
  target_link_options(atoll_internal INTERFACE ${_atoll_san_flags})
endif()

# atoll_add_component(<name> SOURCES ... DEPENDS ...)
#
# Builds the static library atoll_<name> from the folder <name>/ (headers under
# <name>/atoll/<name>/, sources beside them), with the alias atoll::<name>.
function(atoll_add_component name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPENDS" ${ARGN})
  add_library(atoll_${name} STATIC ${ARG_SOURCES})
  add_library(atoll::${name} ALIAS atoll_${name})
  target_include_directories(atoll_${name} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(atoll_${name} PUBLIC cxx_std_17)
  target_link_libraries(atoll_${name} PUBLIC ${ARG_DEPENDS}
                        PRIVATE $<BUILD_INTERFACE:atoll_internal>)
  set_target_properties(atoll_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON
                                                 EXPORT_NAME ${name})
  # Installed as atoll::<name> (see cmake/AtollInstall.cmake).
  install(TARGETS atoll_${name} EXPORT atoll-targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/atoll
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
          FILES_MATCHING PATTERN "*.hpp")
endfunction()
