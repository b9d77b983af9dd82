#include "protocol/md5.h"

#include <openssl/evp.h>

namespace pgregion::protocol {
namespace {

constexpr std::string_view kMd5Prefix = "md5";
constexpr size_t kMd5HexLen = 32;

}  // namespace

// Returns "" if OpenSSL refuses MD5 (a FIPS-only provider): callers then build
// strings that can never match a real digest, so authentication fails closed.
std::string Md5Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr) != 1) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

std::string Md5StoredPassword(std::string_view user, std::string_view password) {
  std::string input(password);
  input.append(user);
  std::string hex = Md5Hex(input);
  if (hex.empty()) return "";
  return std::string(kMd5Prefix) + hex;
}

bool LooksLikeMd5Stored(std::string_view text) {
  if (text.size() != kMd5Prefix.size() + kMd5HexLen || text.substr(0, 3) != kMd5Prefix) {
    return false;
  }
  for (char c : text.substr(kMd5Prefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string Md5Response(std::string_view stored, std::string_view salt4) {
  if (!LooksLikeMd5Stored(stored)) return "";
  std::string input(stored.substr(kMd5Prefix.size()));
  input.append(salt4);
  std::string hex = Md5Hex(input);
  if (hex.empty()) return "";
  return std::string(kMd5Prefix) + hex;
}

}  // namespace pgregion::protocol
