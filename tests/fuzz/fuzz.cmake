# tests/fuzz/fuzz.cmake: the fuzz harnesses.
#   Every build (gcc or clang): fuzzsmoke_<harness> = harness + tests/fuzz/driver.c, registered
#   with ctest (label unit) to replay the seed corpus tests/fuzz/corpus/<harness>/ once: no
#   fuzzing, just the inputs that found something or cover a feature, in every build.
#   -DPX_FUZZ_LIBFUZZER=ON (tests/fuzz/run.sh, clang): fuzz_<harness> linked with libFuzzer;
#   compile everything with -fsanitize=fuzzer-no-link,address,undefined for coverage.
option(PX_FUZZ_LIBFUZZER "Link the fuzz harnesses with libFuzzer (clang)" OFF)
set(_px_fuzz_dir ${PROJECT_SOURCE_DIR}/tests/fuzz)
file(GLOB _px_fuzz_srcs CONFIGURE_DEPENDS ${_px_fuzz_dir}/fuzz_*.c)
foreach(_src IN LISTS _px_fuzz_srcs)
  get_filename_component(_h ${_src} NAME_WE)
  if(_h STREQUAL "fuzz_mem")
    set(_lib mem)
  elseif(TARGET pxcore)
    set(_lib pxcore)
  else()
    continue()
  endif()
  if(PX_FUZZ_LIBFUZZER)
    add_executable(${_h} ${_src})
    target_include_directories(${_h} PRIVATE ${PROJECT_SOURCE_DIR})
    target_link_libraries(${_h} PRIVATE ${_lib})
    target_link_options(${_h} PRIVATE -fsanitize=fuzzer)
  else()
    add_executable(fuzzsmoke_${_h} ${_src} ${_px_fuzz_dir}/driver.c)
    target_include_directories(fuzzsmoke_${_h} PRIVATE ${PROJECT_SOURCE_DIR})
    target_link_libraries(fuzzsmoke_${_h} PRIVATE ${_lib})
    add_test(NAME fuzzsmoke_${_h} COMMAND fuzzsmoke_${_h} ${_px_fuzz_dir}/corpus/${_h})
    set_tests_properties(fuzzsmoke_${_h} PROPERTIES LABELS unit TIMEOUT 120)
  endif()
endforeach()
