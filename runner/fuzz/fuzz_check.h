#pragma once
// FUZZ_CHECK: an invariant of a fuzz target. Broken, it prints where and aborts, which libFuzzer
// reports as a crash with its input (and the corpus replay test as a failure).

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                                \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)
