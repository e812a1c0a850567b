// The fuzz targets' invariant check: a failed one aborts, naming itself, so libFuzzer saves the input.
#pragma once

#include <cstdio>
#include <cstdlib>

#define CHECK(cond)                                                                        \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)
