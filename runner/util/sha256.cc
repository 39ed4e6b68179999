#include "runner/util/sha256.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <iostream>

namespace nanobatch::util {
namespace {

// OpenSSL failing to hash is an allocation failure or a broken library: going on would write
// wrong hashes into the journal, so it ends the process.
void CheckOpenSsl(int ok, const char* what) {
  if (ok != 1) {
    std::cerr << "fatal: OpenSSL " << what << " failed\n";
    std::abort();
  }
}

// SHA-256 fetched from OpenSSL's providers once: EVP_sha256() makes every EVP_DigestInit look
// the algorithm up again (OpenSSL 3), which cost more than hashing a prompt.
const EVP_MD* FetchedSha256() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  CheckOpenSsl(md != nullptr, "EVP_MD_fetch");
  return md;
}

}  // namespace

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  CheckOpenSsl(context_ != nullptr, "EVP_MD_CTX_new");
  CheckOpenSsl(EVP_DigestInit_ex2(context_, FetchedSha256(), nullptr), "EVP_DigestInit_ex2");
}

Sha256::~Sha256() { EVP_MD_CTX_free(context_); }

void Sha256::Update(std::string_view bytes) { Update(bytes.data(), bytes.size()); }

void Sha256::Update(const void* data, std::size_t size) {
  CheckOpenSsl(EVP_DigestUpdate(context_, data, size), "EVP_DigestUpdate");
}

std::string Sha256::FinishHex() {
  Digest digest;
  unsigned int length = 0;
  CheckOpenSsl(EVP_DigestFinal_ex(context_, digest.data(), &length), "EVP_DigestFinal_ex");
  std::string hex;
  AppendHex(digest, length, hex);
  return hex;
}

Sha256::Digest Sha256::Of(std::string_view bytes) {
  thread_local Sha256 reused;
  CheckOpenSsl(EVP_DigestInit_ex2(reused.context_, FetchedSha256(), nullptr), "EVP_DigestInit_ex2");
  reused.Update(bytes);
  Digest digest;
  unsigned int length = 0;
  CheckOpenSsl(EVP_DigestFinal_ex(reused.context_, digest.data(), &length), "EVP_DigestFinal_ex");
  return digest;
}

std::string Sha256::HexOf(std::string_view bytes) {
  std::string hex;
  AppendHex(Of(bytes), sizeof(Digest), hex);
  return hex;
}

void Sha256::AppendHex(const Digest& digest, std::size_t bytes, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::size_t start = out.size();
  out.resize(start + 2 * bytes);
  for (std::size_t i = 0; i < bytes; ++i) {
    out[start + 2 * i] = kHex[digest[i] >> 4];
    out[start + 2 * i + 1] = kHex[digest[i] & 0x0F];
  }
}

}  // namespace nanobatch::util
