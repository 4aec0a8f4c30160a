# embed.cmake - compile a file's bytes into the program as a C array, with nothing but CMake.
#
# Two uses of this one file:
#
#   include(cmake/embed.cmake)        in CMakeLists.txt: defines cr_embed_file()
#   cmake -DCR_EMBED_INPUT=... -DCR_EMBED_OUTPUT=... -DCR_EMBED_SYMBOL=... -P cmake/embed.cmake
#                                     at build time (script mode): writes the .c file
#
# cr_embed_file(<input> <symbol> <out_var>) adds a build-time rule that turns <input> (relative to
# the source dir) into ${CMAKE_BINARY_DIR}/generated/<symbol>.c defining
#
#   const unsigned char <symbol>[];   the bytes, followed by one NUL that is not counted
#   const size_t <symbol>_len;        the number of bytes
#
# and sets <out_var> to that path, to be listed among a target's sources. The rule depends on the
# input (and on this file), so editing the input regenerates and rebuilds it. Consumers declare
# the two symbols themselves (extern).

if(CMAKE_SCRIPT_MODE_FILE)
  # ---------------------------------------------------------------- script mode: generate
  foreach(var CR_EMBED_INPUT CR_EMBED_OUTPUT CR_EMBED_SYMBOL)
    if(NOT DEFINED ${var})
      message(FATAL_ERROR "embed.cmake: ${var} is not set")
    endif()
  endforeach()
  file(READ "${CR_EMBED_INPUT}" hex HEX)
  string(LENGTH "${hex}" hex_len)
  math(EXPR size "${hex_len} / 2")
  # One "0xNN," per byte, then a line break every 16 bytes so compilers and diffs stay happy.
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  # (CMake's regular expressions have no {n}: spell the 16 repetitions out.)
  string(REPEAT "0x[0-9a-f][0-9a-f]," 16 line_re)
  string(REGEX REPLACE "(${line_re})" "\\1\n" bytes "${bytes}")
  get_filename_component(input_name "${CR_EMBED_INPUT}" NAME)
  set(text "/* Generated at build time by cmake/embed.cmake from ${input_name}: do not edit. */\n")
  string(APPEND text "#include <stddef.h>\n\n")
  string(APPEND text "extern const unsigned char ${CR_EMBED_SYMBOL}[];\n")
  string(APPEND text "extern const size_t ${CR_EMBED_SYMBOL}_len;\n\n")
  string(APPEND text "const unsigned char ${CR_EMBED_SYMBOL}[] = {\n${bytes}\n0x00};\n")
  string(APPEND text "const size_t ${CR_EMBED_SYMBOL}_len = ${size};\n")
  file(WRITE "${CR_EMBED_OUTPUT}" "${text}")
  return()
endif()

# ------------------------------------------------------------------ configure mode: the rule
set(CR_EMBED_SCRIPT "${CMAKE_CURRENT_LIST_FILE}")

function(cr_embed_file input symbol out_var)
  set(in "${CMAKE_SOURCE_DIR}/${input}")
  set(out "${CMAKE_BINARY_DIR}/generated/${symbol}.c")
  file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/generated")
  add_custom_command(
    OUTPUT "${out}"
    COMMAND "${CMAKE_COMMAND}" "-DCR_EMBED_INPUT=${in}" "-DCR_EMBED_OUTPUT=${out}"
            "-DCR_EMBED_SYMBOL=${symbol}" -P "${CR_EMBED_SCRIPT}"
    DEPENDS "${in}" "${CR_EMBED_SCRIPT}"
    COMMENT "Embedding ${input} as ${symbol}"
    VERBATIM)
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()
