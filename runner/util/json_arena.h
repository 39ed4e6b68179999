#pragma once
// JsonArena: a stack buffer for the boost::json values of one short-lived job (decoding an API
// answer, building a request body or an output line). boost::json's default storage puts every
// string, object and array on the heap: a poll answer cost about twenty allocations, a metadata
// line a dozen, for thousands of tasks a second. A monotonic resource over this buffer makes
// that none; a value bigger than the buffer spills to the heap in growing blocks, all released
// with the arena.
//
// Values built here must not outlive the arena (their storage points into it): copy what must
// last into std::string or plain structs before the arena goes out of scope.
//
// Example:
//   util::JsonArena arena;
//   boost::json::value value = boost::json::parse(body, error, arena.storage());

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/storage_ptr.hpp>
#include <cstddef>

namespace nanobatch::util {

template <std::size_t Bytes = 4096>
class JsonArena {
 public:
  JsonArena() : resource_(buffer_, Bytes) {}
  JsonArena(const JsonArena&) = delete;
  JsonArena& operator=(const JsonArena&) = delete;

  // Non-owning: the arena outlives every value given this storage.
  boost::json::storage_ptr storage() { return boost::json::storage_ptr(&resource_); }

 private:
  alignas(std::max_align_t) unsigned char buffer_[Bytes];
  boost::json::monotonic_resource resource_;
};

}  // namespace nanobatch::util
