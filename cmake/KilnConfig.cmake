# KilnConfig.cmake — find_package(Kiln): the installed kiln compiler and kiln_add_model().
#
#   find_package(Kiln REQUIRED)          # CMAKE_PREFIX_PATH (or Kiln_DIR) at Kiln's install prefix
#   kiln_add_model(digits MODEL model.onnx [NAME prefix] [INPUT_SHAPE image=1x1x8x8 ...]
#                  [QUANTIZE int8 CALIBRATION dir] [STATIC|SHARED] [CPU x86-64-v3]
#                  [OPTIONS --more --kiln-flags])
#   target_link_libraries(app PRIVATE digits)
#
# kiln_add_model compiles the model at build time (a custom command running `kiln compile`) into
# ${CMAKE_CURRENT_BINARY_DIR}/kiln/<target>/ and makes <target> a library carrying the model's
# include directory and link line (the static archive with oneDNN, OpenMP, libstdc++; or the
# shared library) and Kiln's include directory (kiln/model.hpp). The command re-runs only when the model, its calibration files, the options
# or the kiln binary change. NAME is the C prefix of the model's functions (default: <target>).
# Sets KILN_EXECUTABLE, KILN_INCLUDE_DIR (the runtime headers, with kiln/model.hpp, the C++
# wrapper of a model's C API) and Kiln_VERSION.
cmake_minimum_required(VERSION 3.19)

get_filename_component(_kiln_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
find_program(KILN_EXECUTABLE kiln HINTS "${_kiln_prefix}/bin" NO_DEFAULT_PATH)
if(NOT KILN_EXECUTABLE)
  set(Kiln_FOUND FALSE)
  set(Kiln_NOT_FOUND_MESSAGE "no kiln executable in ${_kiln_prefix}/bin (is Kiln installed there? scripts/install --prefix DIR)")
  return()
endif()
set(KILN_INCLUDE_DIR "${_kiln_prefix}/include")
execute_process(COMMAND "${KILN_EXECUTABLE}" --version OUTPUT_VARIABLE _kiln_version_text
                OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _kiln_version_status)
if(NOT _kiln_version_status EQUAL 0)
  set(Kiln_FOUND FALSE)
  set(Kiln_NOT_FOUND_MESSAGE "${KILN_EXECUTABLE} --version failed (${_kiln_version_status})")
  return()
endif()
string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+" Kiln_VERSION "${_kiln_version_text}")

find_library(KILN_DNNL_LIBRARY NAMES dnnl)
if(NOT KILN_DNNL_LIBRARY)
  set(Kiln_FOUND FALSE)
  set(Kiln_NOT_FOUND_MESSAGE "oneDNN (libdnnl) not found: Kiln's libraries need it (Debian: apt-get install libdnnl-dev)")
  return()
endif()

function(kiln_add_model target)
  cmake_parse_arguments(PARSE_ARGV 1 KAM "STATIC;SHARED" "MODEL;NAME;QUANTIZE;CALIBRATION;CPU" "INPUT_SHAPE;OPTIONS")
  if(KAM_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "kiln_add_model(${target}): unknown arguments: ${KAM_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT KAM_MODEL)
    message(FATAL_ERROR "kiln_add_model(${target}): MODEL <file.onnx> is required")
  endif()
  if(KAM_STATIC AND KAM_SHARED)
    message(FATAL_ERROR "kiln_add_model(${target}): STATIC or SHARED, not both")
  endif()
  if(KAM_QUANTIZE AND NOT KAM_CALIBRATION)
    message(FATAL_ERROR "kiln_add_model(${target}): QUANTIZE ${KAM_QUANTIZE} needs CALIBRATION <dir or file>")
  endif()
  if(KAM_CALIBRATION AND NOT KAM_QUANTIZE)
    message(FATAL_ERROR "kiln_add_model(${target}): CALIBRATION is for QUANTIZE int8")
  endif()
  get_filename_component(model "${KAM_MODEL}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${model}")
    message(FATAL_ERROR "kiln_add_model(${target}): no model file ${model}")
  endif()
  set(name "${target}")
  if(KAM_NAME)
    set(name "${KAM_NAME}")
  endif()
  if(NOT name MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "kiln_add_model(${target}): NAME '${name}' is not a C identifier (give NAME prefix)")
  endif()
  set(kind static)
  if(KAM_SHARED)
    set(kind shared)
  endif()
  set(outdir "${CMAKE_CURRENT_BINARY_DIR}/kiln/${target}")

  set(args compile "${model}" -o "${outdir}" --name "${name}" --library ${kind})
  foreach(shape IN LISTS KAM_INPUT_SHAPE)
    list(APPEND args --input-shape "${shape}")
  endforeach()
  set(depends "${model}" "${KILN_EXECUTABLE}")
  if(KAM_QUANTIZE)
    get_filename_component(calibration "${KAM_CALIBRATION}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND args --quantize "${KAM_QUANTIZE}" --calibration "${calibration}")
    if(IS_DIRECTORY "${calibration}")
      file(GLOB_RECURSE calibration_files CONFIGURE_DEPENDS "${calibration}/*")
      list(APPEND depends ${calibration_files})
    else()
      list(APPEND depends "${calibration}")
    endif()
  endif()
  if(KAM_CPU)
    list(APPEND args --cpu "${KAM_CPU}")
  endif()
  list(APPEND args ${KAM_OPTIONS})

  # The options as a file that changes only when they do: Make does not rerun a command whose
  # line changed, so the command depends on this stamp.
  string(REPLACE ";" "\n" options_text "${args}")
  file(CONFIGURE OUTPUT "${outdir}.options" CONTENT "${options_text}\n")
  list(APPEND depends "${outdir}.options")

  if(kind STREQUAL "static")
    set(library "${outdir}/lib${name}.a")
  else()
    set(library "${outdir}/lib${name}.so")
  endif()
  add_custom_command(
    OUTPUT "${library}" "${outdir}/${name}.h"
    COMMAND "${KILN_EXECUTABLE}" ${args}
    DEPENDS ${depends}
    COMMENT "Kiln: compiling ${KAM_MODEL} into ${name} (${kind})"
    VERBATIM)
  add_custom_target(${target}_kiln DEPENDS "${library}" "${outdir}/${name}.h")

  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_kiln)
  target_include_directories(${target} INTERFACE "${outdir}" "${KILN_INCLUDE_DIR}")
  if(kind STREQUAL "static")
    target_link_libraries(${target} INTERFACE "${library}" "${KILN_DNNL_LIBRARY}" gomp stdc++ m pthread)
  else()
    target_link_libraries(${target} INTERFACE "${library}")
  endif()
  set_target_properties(${target} PROPERTIES KILN_OUTPUT_DIRECTORY "${outdir}" KILN_LIBRARY "${library}")
endfunction()

set(Kiln_FOUND TRUE)
