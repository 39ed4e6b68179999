#include "runner/util/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>

namespace nanobatch::util {
namespace {

std::size_t RoundUp(std::size_t bytes) {
  return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
}

}  // namespace

void* AllocateHugePages(std::size_t bytes) {
  const std::size_t size = RoundUp(bytes);
  // A huge page needs a range aligned to its size: map one page more than needed, then give
  // back the unaligned head and the tail.
  const std::size_t mapped = size + kHugePageBytes;
  void* raw = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
  if (aligned > start) ::munmap(raw, aligned - start);
  const std::uintptr_t tail = aligned + size;
  const std::uintptr_t end = start + mapped;
  if (end > tail) ::munmap(reinterpret_cast<void*>(tail), end - tail);
  void* memory = reinterpret_cast<void*>(aligned);
  // Only advice: without transparent huge pages this fails and ordinary pages serve.
  (void)::madvise(memory, size, MADV_HUGEPAGE);
  return memory;
}

void FreeHugePages(void* pointer, std::size_t bytes) {
  if (pointer != nullptr) ::munmap(pointer, RoundUp(bytes));
}

}  // namespace nanobatch::util
