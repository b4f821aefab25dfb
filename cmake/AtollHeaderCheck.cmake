# Header self-containment: `cmake --build build --target header_check`
# compiles one translation unit per header of the four components, each
# including only that header (twice, to check its include guard), so a header
# that relies on what its users included before fails here. CI builds it;
# the default build does not (it costs about two minutes on two cores).
set(_atoll_header_check_dir "${PROJECT_BINARY_DIR}/header_check")
set(_atoll_header_check_sources)
foreach(_component runtime transports handlers supervisors)
  file(GLOB_RECURSE _headers RELATIVE "${PROJECT_SOURCE_DIR}/${_component}"
       CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/${_component}/atoll/*.hpp")
  foreach(_header IN LISTS _headers)
    string(REPLACE "/" "__" _name "${_header}")
    set(_source "${_atoll_header_check_dir}/${_name}.cpp")
    file(CONFIGURE OUTPUT "${_source}"
         CONTENT "#include \"${_header}\"\n#include \"${_header}\"\n")
    list(APPEND _atoll_header_check_sources "${_source}")
  endforeach()
endforeach()
add_library(header_check OBJECT EXCLUDE_FROM_ALL ${_atoll_header_check_sources})
target_link_libraries(header_check PRIVATE atoll::atoll atoll_internal)
