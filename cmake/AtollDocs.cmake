# The API reference: `cmake --build build --target docs` runs Debian's doxygen
# over the public headers (detail/ folders and atl::detail left out) into
# build/docs/html. Any warning (an undocumented public declaration, a broken
# reference) fails the target.
find_package(Doxygen QUIET)
if(NOT DOXYGEN_FOUND)
  message(STATUS "doxygen not found: no docs target (apt-get install doxygen)")
  return()
endif()

set(DOXYGEN_PROJECT_NAME "Atoll")
set(DOXYGEN_PROJECT_NUMBER "${PROJECT_VERSION}")
set(DOXYGEN_PROJECT_BRIEF "Erlang-style supervised socket servers for CAF")
set(DOXYGEN_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/docs")
set(DOXYGEN_FILE_PATTERNS "*.hpp")
set(DOXYGEN_RECURSIVE YES)
set(DOXYGEN_EXCLUDE_PATTERNS "*/detail/*")
set(DOXYGEN_EXCLUDE_SYMBOLS "atl::detail" "atl::detail::*" "detail")
set(DOXYGEN_EXTRACT_ALL NO)
set(DOXYGEN_EXTRACT_PRIVATE NO)
set(DOXYGEN_WARN_IF_UNDOCUMENTED YES)
set(DOXYGEN_WARN_IF_DOC_ERROR YES)
set(DOXYGEN_WARN_NO_PARAMDOC NO)
set(DOXYGEN_WARN_AS_ERROR FAIL_ON_WARNINGS)
set(DOXYGEN_JAVADOC_AUTOBRIEF YES)
set(DOXYGEN_GENERATE_LATEX NO)
set(DOXYGEN_GENERATE_HTML YES)
set(DOXYGEN_QUIET YES)
set(DOXYGEN_FULL_PATH_NAMES YES)
set(DOXYGEN_STRIP_FROM_PATH "${PROJECT_SOURCE_DIR}")
set(DOXYGEN_STRIP_FROM_INC_PATH "${PROJECT_SOURCE_DIR}/runtime" "${PROJECT_SOURCE_DIR}/transports"
                                "${PROJECT_SOURCE_DIR}/handlers" "${PROJECT_SOURCE_DIR}/supervisors")
set(DOXYGEN_MACRO_EXPANSION YES)
set(DOXYGEN_PREDEFINED "CAF_ALLOW_UNSAFE_MESSAGE_TYPE(x)=")
doxygen_add_docs(docs
  "${PROJECT_SOURCE_DIR}/runtime/atoll" "${PROJECT_SOURCE_DIR}/transports/atoll"
  "${PROJECT_SOURCE_DIR}/handlers/atoll" "${PROJECT_SOURCE_DIR}/supervisors/atoll"
  COMMENT "API reference (doxygen) into ${PROJECT_BINARY_DIR}/docs/html")
