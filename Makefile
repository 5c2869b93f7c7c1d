# Thin wrapper around CMake (as neovim does). The real build is CMakeLists.txt.
BUILD_DIR ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all build test unit e2e asan tsan format bench clean

all: build

build:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j$(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) -LE '^e2e' && ctest --output-on-failure -L '^e2e$$'

unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j$(JOBS) -L unit

e2e: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L '^e2e$$'

asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPX_SANITIZE=address,undefined
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ctest --output-on-failure -j$(JOBS) -L 'unit|stress|fault'

tsan:
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DPX_SANITIZE=thread
	cmake --build build-tsan -j$(JOBS)
	cd build-tsan && ctest --output-on-failure -j$(JOBS) -L stress

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) build-asan build-tsan
