# Test registration. Adding a test is adding a file; nothing here needs editing:
#   tests/unit/<folder>/<mod>_test.c   label unit    (links mem for folder mem, else pxcore)
#   tests/stress/<mod>_<case>.c        label stress  (args: threads iterations)
#   tests/fault/<name>.c               label fault   (needs MEM_FAULT_INJECT)
#   tests/e2e/NN-name.{sh,py,js}       label e2e     (real weir binary, real clients)
# Every C test uses tests/harness.h.

set(PX_TEST_TIMEOUT_UNIT 120)
set(PX_TEST_TIMEOUT_STRESS 300)
set(PX_TEST_TIMEOUT_E2E 600)

function(px_add_c_test name src label timeout)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  # Tests of proxy/'s folders (tests/unit/<folder>/ for every folder but mem) link pxcore.
  set(_px FALSE)
  if((src MATCHES "/unit/" AND NOT src MATCHES "/unit/mem/") OR src MATCHES "/fault/proxy_"
     OR src MATCHES "/stress/proxy_")
    set(_px TRUE)
  endif()
  if(_px AND NOT TARGET pxcore)
    return()
  endif()
  if(_px)
    target_link_libraries(${name} PRIVATE pxcore)
  else()
    target_link_libraries(${name} PRIVATE mem)
  endif()
  add_test(NAME ${name} COMMAND ${name} ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS ${label} TIMEOUT ${timeout})
endfunction()

# One unit test binary per module.
function(px_add_unit_test src)
  get_filename_component(_mod ${src} NAME_WE)
  get_filename_component(_dir ${src} DIRECTORY)
  get_filename_component(_folder ${_dir} NAME)
  px_add_c_test(unit_${_folder}_${_mod} ${src} unit ${PX_TEST_TIMEOUT_UNIT})
endfunction()

file(GLOB _unit CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/unit/*/*_test.c)
foreach(_t IN LISTS _unit)
  px_add_unit_test(${_t})
endforeach()

file(GLOB _stress CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/stress/*.c)
foreach(_t IN LISTS _stress)
  get_filename_component(_n ${_t} NAME_WE)
  px_add_c_test(stress_${_n} ${_t} stress ${PX_TEST_TIMEOUT_STRESS})
endforeach()

if(MEM_FAULT_INJECT)
  file(GLOB _fault CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/fault/*.c)
  foreach(_t IN LISTS _fault)
    get_filename_component(_n ${_t} NAME_WE)
    px_add_c_test(fault_${_n} ${_t} fault ${PX_TEST_TIMEOUT_UNIT})
  endforeach()
endif()

# e2e tests need the real binary; they find it and the helpers through the environment.
file(GLOB _e2e CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/e2e/[0-9][0-9]-*.sh
     ${PROJECT_SOURCE_DIR}/tests/e2e/[0-9][0-9]-*.py ${PROJECT_SOURCE_DIR}/tests/e2e/[0-9][0-9]-*.js)
foreach(_t IN LISTS _e2e)
  get_filename_component(_n ${_t} NAME_WE)
  get_filename_component(_ext ${_t} EXT)
  if(_ext STREQUAL ".py")
    set(_cmd /usr/bin/python3 ${_t})
  elseif(_ext STREQUAL ".js")
    set(_cmd node ${_t})
  else()
    set(_cmd bash ${_t})
  endif()
  if(NOT TARGET weir)
    continue()
  endif()
  add_test(NAME e2e_${_n} COMMAND ${_cmd})
  set_tests_properties(e2e_${_n} PROPERTIES LABELS e2e TIMEOUT ${PX_TEST_TIMEOUT_E2E}
    ENVIRONMENT "WEIR_BIN=$<TARGET_FILE:weir>;WEIR_SRC=${PROJECT_SOURCE_DIR};WEIR_BUILD=${PROJECT_BINARY_DIR}"
    SKIP_RETURN_CODE 77)
endforeach()
