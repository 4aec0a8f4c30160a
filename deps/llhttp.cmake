# llhttp from Debian's node-llhttp package: C sources and header under /usr/share. The sources
# are generated code that warns under our flags, so they build as their own static library with
# warnings off, and the header is a SYSTEM include for everyone who links it.
set(LLHTTP_SRC_DIR "/usr/share/llhttp" CACHE PATH "llhttp C sources (node-llhttp)")
set(LLHTTP_INCLUDE_DIR "/usr/share/include/llhttp" CACHE PATH "llhttp header (node-llhttp)")
if(NOT EXISTS "${LLHTTP_SRC_DIR}/llhttp.c" OR NOT EXISTS "${LLHTTP_INCLUDE_DIR}/llhttp.h")
  message(FATAL_ERROR "llhttp sources not found in ${LLHTTP_SRC_DIR}: run deps/install.sh")
endif()
add_library(llhttp STATIC
  "${LLHTTP_SRC_DIR}/llhttp.c" "${LLHTTP_SRC_DIR}/api.c" "${LLHTTP_SRC_DIR}/http.c")
target_include_directories(llhttp SYSTEM PUBLIC "${LLHTTP_INCLUDE_DIR}")
target_compile_options(llhttp PRIVATE -w)
set_target_properties(llhttp PROPERTIES C_STANDARD 99 POSITION_INDEPENDENT_CODE ON)
