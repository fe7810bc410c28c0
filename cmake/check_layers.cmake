# The include order of the source folders, checked at configure time: a file may include headers
# of its own layer and of the layers before it, never after (docs/ARCHITECTURE.md, section 1).
#   core <- kernels <- kv <- commvq <- model <- collect <- tasks <- eval|gpu <- bench <- cli   (device on core)
# Used by CMakeLists.txt (commvq_check_layers(${PROJECT_SOURCE_DIR})) and, for tests, as a script:
#   cmake -DROOT=<tree> -P cmake/check_layers.cmake
# An upward include stops the configure with the file, the header and both layers named.

cmake_policy(SET CMP0057 NEW)  # if(IN_LIST) in script mode

set(COMMVQ_LAYER_RANK_core 0)
set(COMMVQ_LAYER_RANK_device 1)
set(COMMVQ_LAYER_RANK_kernels 1)
set(COMMVQ_LAYER_RANK_kv 2)
set(COMMVQ_LAYER_RANK_commvq 3)
set(COMMVQ_LAYER_RANK_model 4)
set(COMMVQ_LAYER_RANK_collect 5)
set(COMMVQ_LAYER_RANK_tasks 6)
set(COMMVQ_LAYER_RANK_eval 7)
set(COMMVQ_LAYER_RANK_gpu 7)
set(COMMVQ_LAYER_RANK_bench 8)
set(COMMVQ_LAYER_RANK_cli 9)

function(commvq_layer_of path out)
  if(path MATCHES "^kernels/")
    set(${out} kernels PARENT_SCOPE)
  elseif(path MATCHES "^src/([^/]+)/")
    set(${out} ${CMAKE_MATCH_1} PARENT_SCOPE)
  elseif(path MATCHES "^([^/]+)/")
    set(${out} ${CMAKE_MATCH_1} PARENT_SCOPE)
  else()
    set(${out} "" PARENT_SCOPE)
  endif()
endfunction()

function(commvq_check_layers root)
  file(GLOB_RECURSE files RELATIVE ${root} ${root}/src/*.h ${root}/src/*.cpp ${root}/kernels/*.h
       ${root}/kernels/*.cpp ${root}/kernels/*.cu ${root}/kernels/*.cuh ${root}/bench/*.h ${root}/bench/*.cpp)
  set(violations "")
  foreach(f IN LISTS files)
    commvq_layer_of(${f} from)
    if(NOT DEFINED COMMVQ_LAYER_RANK_${from})
      continue()
    endif()
    file(STRINGS ${root}/${f} includes REGEX "^#include \"[^\"]+\"")
    foreach(line IN LISTS includes)
      string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" header "${line}")
      commvq_layer_of(${header} to)
      if(NOT DEFINED COMMVQ_LAYER_RANK_${to})
        continue()
      endif()
      if(COMMVQ_LAYER_RANK_${to} GREATER COMMVQ_LAYER_RANK_${from})
        string(APPEND violations "\n  ${f} (${from}) includes ${header} (${to})")
      endif()
    endforeach()
  endforeach()
  if(violations)
    message(FATAL_ERROR "layer violation: a lower layer includes a higher one "
                        "(order: core <- kernels <- kv <- commvq <- model <- collect <- tasks <- eval|gpu <- bench <- cli; "
                        "docs/ARCHITECTURE.md):${violations}")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE AND DEFINED ROOT)
  commvq_check_layers(${ROOT})
  message(STATUS "layers: no upward include in ${ROOT}")
endif()
