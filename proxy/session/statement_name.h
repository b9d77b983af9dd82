// Proxy-owned names of server-side prepared statements.
//
// A client's named statement lives on the servers under a name derived from
// its Parse tail (query text and parameter types), so that every pooled
// connection that has the statement has it under the same name and a session
// can reuse what another one prepared. The name must never be shared by two
// different tails: a hash that can collide (std::hash, 64 bits) would make two
// statements meet under one name. SHA-256 makes that as unlikely as a
// collision of the hash itself, without a process-wide table to grow and lock;
// base64url keeps the name short: "pgr_" + 43 characters = 47 bytes, under the
// NAMEDATALEN - 1 = 63 bytes PostgreSQL keys prepared statements by
// (src/backend/commands/prepare.c hashes names into NAMEDATALEN-sized keys,
// so longer names would collide after truncation). Header-only: loop thread
// and tests alike.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace pgregion::proxy {

inline std::string ServerStatementName(std::string_view parse_tail) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(parse_tail.data(), parse_tail.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string name = "pgr_";
  // base64url without padding, 6 bits a character.
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned int i = 0; i < len; ++i) {
    acc = (acc << 8) | digest[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      name.push_back(kAlphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) name.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
  return name;
}

}  // namespace pgregion::proxy
