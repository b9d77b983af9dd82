// A digest of what a server's replies show a client: every row (DataRow,
// CopyData), every command tag (CommandComplete), and the SQLSTATE of every
// error. Acknowledgements, descriptions, notices, parameter reports and
// ReadyForQuery are left out: they do not depend on the data read.
//
// An optimistic read transaction (proxy/session/client_session_optimistic.cc)
// digests what the replica returned and, after moving to the primary, what
// the replay of the same statements returned there; equal digests mean the
// client saw what the primary would have shown it. The digest is SHA-256, so
// results that differ do not compare equal by accident; memory is constant
// whatever the size of the results.
//
// Feed() takes the server-to-client byte stream in any chunking (whole
// messages, several at once, or one large message in pieces). Pure.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace pgregion::protocol {

class ReplyDigest {
 public:
  ReplyDigest();
  ~ReplyDigest();
  ReplyDigest(const ReplyDigest&) = delete;
  ReplyDigest& operator=(const ReplyDigest&) = delete;

  void Feed(std::string_view bytes);
  // The SHA-256 of everything digested so far (Feed may go on afterwards).
  std::array<uint8_t, 32> Value() const;
  // Messages digested (rows, tags, errors).
  uint64_t digested() const { return digested_; }

 private:
  void StartMessage();
  void Hash(std::string_view bytes);
  void EndMessage();

  EVP_MD_CTX* ctx_;
  char header_[5] = {};
  size_t header_len_ = 0;
  uint32_t remaining_ = 0;  // body bytes of the current message still to come
  bool in_body_ = false;
  char type_ = 0;
  bool hashed_ = false;     // the current message's body is hashed
  std::string error_body_;  // an ErrorResponse's body, to find its SQLSTATE
  uint64_t digested_ = 0;
};

}  // namespace pgregion::protocol
