// libfull_disk.so: an LD_PRELOAD shim standing in for a disk that fills up while a process runs.
// The first NB_FULL_DISK_AFTER calls of fallocate (default 0) do the real call; every later one
// fails with ENOSPC, as fallocate does on a full disk. Writes are left alone: the disk still
// takes what was allocated before, which is the case the journal's space ahead is for.
//
//   NB_FULL_DISK_AFTER=1 LD_PRELOAD=bazel-bin/runner/testing/libfull_disk.so nanobatch run ...
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>

static atomic_long calls;

static int Refused(void) {
  static long allowed = -1;
  if (allowed < 0) {
    const char* text = getenv("NB_FULL_DISK_AFTER");
    allowed = text != NULL ? atol(text) : 0;
  }
  return atomic_fetch_add(&calls, 1) >= allowed;
}

#define FULL_DISK(name)                                                                \
  int name(int fd, int mode, off_t offset, off_t length) {                             \
    static int (*real)(int, int, off_t, off_t) = NULL;                                 \
    if (real == NULL) real = (int (*)(int, int, off_t, off_t))dlsym(RTLD_NEXT, #name); \
    if (Refused()) {                                                                   \
      errno = ENOSPC;                                                                  \
      return -1;                                                                       \
    }                                                                                  \
    return real(fd, mode, offset, length);                                             \
  }

FULL_DISK(fallocate)
FULL_DISK(fallocate64)
