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

  using Digest = std::array<std::uint8_t, 32>;
  // One-shot: the digest of `bytes`, through one context per thread that is reset rather than
  // allocated and freed again (a manifest's derived ids hash a few hundred thousand prompts).
  static Digest Of(std::string_view bytes);
  static std::string HexOf(std::string_view bytes);
  // Lower-case hex of the first `bytes` bytes of `digest` appended to `out`.
  static void AppendHex(const Digest& digest, std::size_t bytes, std::string& out);

 private:
  ::evp_md_ctx_st* context_;
};

}  // namespace nanobatch::util
