#include "protocol/reply_digest.h"

#include <openssl/evp.h>

#include <algorithm>

#include "protocol/frame_decoder.h"
#include "protocol/messages.h"

namespace pgregion::protocol {

namespace {
// An ErrorResponse body longer than this is not kept whole: the SQLSTATE
// field comes early in every server's errors (after severity).
constexpr size_t kMaxErrorBody = 4096;
}  // namespace

ReplyDigest::ReplyDigest() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ != nullptr) EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
}

ReplyDigest::~ReplyDigest() { EVP_MD_CTX_free(ctx_); }

void ReplyDigest::Hash(std::string_view bytes) {
  if (ctx_ != nullptr && !bytes.empty()) EVP_DigestUpdate(ctx_, bytes.data(), bytes.size());
}

void ReplyDigest::Feed(std::string_view bytes) {
  while (!bytes.empty()) {
    if (!in_body_) {
      const size_t take = std::min(bytes.size(), sizeof(header_) - header_len_);
      std::copy_n(bytes.data(), take, header_ + header_len_);
      header_len_ += take;
      bytes.remove_prefix(take);
      if (header_len_ < sizeof(header_)) return;
      StartMessage();
      if (remaining_ == 0) EndMessage();
      continue;
    }
    const size_t take = std::min<size_t>(bytes.size(), remaining_);
    const std::string_view part = bytes.substr(0, take);
    if (hashed_) Hash(part);
    if (type_ == 'E' && error_body_.size() < kMaxErrorBody) {
      error_body_.append(part.substr(0, kMaxErrorBody - error_body_.size()));
    }
    remaining_ -= static_cast<uint32_t>(take);
    bytes.remove_prefix(take);
    if (remaining_ == 0) EndMessage();
  }
}

void ReplyDigest::StartMessage() {
  type_ = header_[0];
  const uint32_t len = ReadUint32(std::string_view(header_ + 1, 4));
  remaining_ = len >= 4 ? len - 4 : 0;
  in_body_ = true;
  // Rows and command tags whole; errors by SQLSTATE only (their texts may
  // name the node: "canceling statement due to conflict with recovery").
  hashed_ = type_ == 'D' || type_ == 'C' || type_ == 'd';
  if (hashed_) Hash(std::string_view(header_, sizeof(header_)));
  error_body_.clear();
}

void ReplyDigest::EndMessage() {
  if (type_ == 'E') {
    std::string record = "E";
    absl::StatusOr<ErrorNotice> err = ParseErrorNotice(error_body_);
    record.append(err.ok() ? err->sqlstate() : std::string_view("?????"));
    Hash(record);
    std::string().swap(error_body_);
    ++digested_;
  } else if (hashed_) {
    ++digested_;
  }
  in_body_ = false;
  header_len_ = 0;
  hashed_ = false;
  type_ = 0;
}

std::array<uint8_t, 32> ReplyDigest::Value() const {
  std::array<uint8_t, 32> out{};
  if (ctx_ == nullptr) return out;
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  if (copy == nullptr) return out;
  unsigned int len = 0;
  if (EVP_MD_CTX_copy_ex(copy, ctx_) == 1) EVP_DigestFinal_ex(copy, out.data(), &len);
  EVP_MD_CTX_free(copy);
  return out;
}

}  // namespace pgregion::protocol
