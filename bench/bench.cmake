# bench/bench.cmake: benchmark binaries for mem/ (included when PX_BUILD_BENCH=ON).
#
# Benchmarks are never registered with ctest: bench/run-alloc runs them and writes
# bench/results/alloc.md. They are always built with -O2, whatever the build type, so that a
# Debug tree still gives meaningful (if asserting) numbers; publish only Release figures.
#   bench_alloc_trace   the HTTP/2-shaped allocation trace (--mode weir-tcache|weir-subarena|libc|floor)
#   bench_mem_micro     thread-cache pair, sub-arena alloc, depot transfer, glibc pair
# Both link mem, which exports mem_malloc and friends but never malloc itself, so the libc
# mode measures whatever malloc the process resolves (LD_PRELOAD picks jemalloc and others).

foreach(_bench alloc_trace mem_micro)
  if(EXISTS ${PROJECT_SOURCE_DIR}/bench/${_bench}.c)
    add_executable(bench_${_bench} ${PROJECT_SOURCE_DIR}/bench/${_bench}.c)
    target_include_directories(bench_${_bench} PRIVATE ${PROJECT_SOURCE_DIR})
    target_link_libraries(bench_${_bench} PRIVATE mem Threads::Threads ${CMAKE_DL_LIBS})
    # Appended after the build type's flags, so -O2 wins over Debug's -O0.
    target_compile_options(bench_${_bench} PRIVATE -O2 -g)
    set_target_properties(bench_${_bench} PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                                                     ${CMAKE_BINARY_DIR}/bench)
  endif()
endforeach()
