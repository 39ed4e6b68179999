// slow_sync.so: an LD_PRELOAD shim standing in for a slow disk or a network filesystem, and a
// counter of the syncs a process makes. Every fsync, fdatasync and syncfs sleeps
// NB_SYNC_DELAY_MS (default 0) before doing the real call; at exit the counts are written to
// NB_SYNC_COUNT_FILE (if set) as {"fsync": N, "fdatasync": M, "syncfs": K}.
//
//   export NB_SYNC_DELAY_MS=10 NB_SYNC_COUNT_FILE=/tmp/syncs.json
//   LD_PRELOAD=bazel-bin/tools/bench/libslow_sync.so nanobatch run ...
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static atomic_long fsyncs, fdatasyncs, syncfses;

static void Delay(void) {
  static long delay_ms = -1;
  if (delay_ms < 0) {
    const char* text = getenv("NB_SYNC_DELAY_MS");
    delay_ms = text != NULL ? atol(text) : 0;
  }
  if (delay_ms <= 0) return;
  struct timespec rest = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
  while (nanosleep(&rest, &rest) != 0) {
  }
}

// Each wrapper counts, sleeps, then calls the real function (looked up once).
#define SLOW_SYNC(name, counter)                                   \
  int name(int fd) {                                               \
    static int (*real)(int) = NULL;                                \
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, #name); \
    atomic_fetch_add(&counter, 1);                                 \
    Delay();                                                       \
    return real(fd);                                               \
  }

SLOW_SYNC(fsync, fsyncs)
SLOW_SYNC(fdatasync, fdatasyncs)
SLOW_SYNC(syncfs, syncfses)

__attribute__((destructor)) static void WriteCounts(void) {
  const char* path = getenv("NB_SYNC_COUNT_FILE");
  if (path == NULL || *path == '\0') return;
  FILE* out = fopen(path, "w");
  if (out == NULL) return;
  fprintf(out, "{\"fsync\": %ld, \"fdatasync\": %ld, \"syncfs\": %ld}\n", atomic_load(&fsyncs),
          atomic_load(&fdatasyncs), atomic_load(&syncfses));
  fclose(out);
}
