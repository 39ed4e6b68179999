#pragma once
// Sha256: incremental SHA-256 over OpenSSL's EVP interface, for derived manifest ids and for
// hashing downloads while they stream (no second pass over the file).
//
// Example:
//   Sha256 hash;
//   hash.Update("abc");
//   std::string hex = hash.FinishHex();  // "ba7816bf..."

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace nanobatch::util {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view bytes);
  void Update(const void* data, std::size_t size);
  // Lower-case hex of the digest. The object must not be used afterwards.
  std::string FinishHex();

  // One-shot convenience.
  static std::string HexOf(std::string_view bytes);

 private:
  ::evp_md_ctx_st* context_;
};

}  // namespace nanobatch::util
