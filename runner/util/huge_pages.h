#pragma once
// Memory for large, hot, randomly or repeatedly touched buffers (the id table of a million-item
// manifest, the manifest reader's 4 MiB window), backed by 2 MiB pages where the kernel offers
// transparent huge pages (Debian's default: on request, `madvise`).
//
// Why: validating a 268 MB manifest took some 5,000 page faults, half of them growing the id
// table, and every id check probes that table at a random place: with 4 KiB pages each probe
// of a table of megabytes is also a miss of the TLB. A 2 MiB page is one fault and one TLB entry
// for 512 of them.
//
// Small requests (below one huge page) come from the ordinary allocator: rounding them up would
// waste memory. Where the kernel has no transparent huge pages, the memory is ordinary anonymous
// memory and everything still works.
//
// Example:
//   std::vector<Entry, util::HugePageAllocator<Entry>> table(1 << 20);
//   util::HugePageBuffer window(4 << 20);   // window.data(), window.size()

#include <cstddef>
#include <memory>
#include <new>

namespace nanobatch::util {

inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

// `bytes` (rounded up to whole huge pages) of zeroed memory aligned to a huge page, asked to be
// backed by huge pages; nullptr when the system has no memory to give. Free with
// FreeHugePages(pointer, bytes) with the same `bytes`.
void* AllocateHugePages(std::size_t bytes);
void FreeHugePages(void* pointer, std::size_t bytes);

// A std::allocator that takes requests of a huge page or more from AllocateHugePages.
template <typename T>
class HugePageAllocator {
 public:
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  explicit HugePageAllocator(const HugePageAllocator<U>& /*other*/) noexcept {}

  T* allocate(std::size_t count) {
    const std::size_t bytes = count * sizeof(T);
    if (bytes < kHugePageBytes) return std::allocator<T>().allocate(count);
    void* memory = AllocateHugePages(bytes);
    if (memory == nullptr) throw std::bad_alloc();
    return static_cast<T*>(memory);
  }
  void deallocate(T* pointer, std::size_t count) noexcept {
    const std::size_t bytes = count * sizeof(T);
    if (bytes < kHugePageBytes) {
      std::allocator<T>().deallocate(pointer, count);
    } else {
      FreeHugePages(pointer, bytes);
    }
  }
  template <typename U>
  bool operator==(const HugePageAllocator<U>& /*other*/) const noexcept {
    return true;
  }
};

// A buffer of `size` bytes from HugePageAllocator, its contents unspecified. (Pages of a large
// buffer are faulted in only when first written: a window mostly unused costs little.)
class HugePageBuffer {
 public:
  explicit HugePageBuffer(std::size_t size) : data_(allocator().allocate(size)), size_(size) {}
  ~HugePageBuffer() { allocator().deallocate(data_, size_); }
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;

  char* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  static HugePageAllocator<char> allocator() { return {}; }
  char* data_;
  std::size_t size_;
};

}  // namespace nanobatch::util
