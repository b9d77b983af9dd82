#include "protocol/frame_decoder.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace pgregion::protocol {
namespace {

// The type byte plus the int32 length.
constexpr size_t kHeaderSize = 5;

}  // namespace

uint32_t ReadUint32(std::string_view in) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(in[0])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(in[1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(in[2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(in[3]));
}

bool SplitWholeMessage(std::string_view* rest, Frame* frame) {
  if (rest->size() < kHeaderSize) return false;
  const uint32_t length = ReadUint32(rest->substr(1));
  if (length < 4 || size_t{length} + 1 > rest->size()) return false;
  frame->type = (*rest)[0];
  frame->length = length;
  frame->bytes = rest->substr(0, size_t{length} + 1);
  frame->body = frame->bytes.substr(kHeaderSize);
  frame->first = frame->last = true;
  rest->remove_prefix(frame->bytes.size());
  return true;
}

namespace {

DecodeResult Error(absl::Status status) {
  DecodeResult r;
  r.status = DecodeStatus::kError;
  r.error = std::move(status);
  return r;
}

}  // namespace

MessageDecoder::MessageDecoder(uint32_t max_message_bytes, uint32_t stream_threshold)
    : max_message_bytes_(max_message_bytes), stream_threshold_(stream_threshold) {}

void MessageDecoder::SetStreamable(char type, bool streamable) {
  streamable_.set(static_cast<unsigned char>(type), streamable);
}

DecodeResult MessageDecoder::Next(std::string_view in) {
  DecodeResult r;
  if (remaining_ > 0) {
    // An empty continuation would look like progress to a caller looping on kFrame.
    if (in.empty()) return r;
    const size_t n = std::min<size_t>(in.size(), remaining_);
    remaining_ -= static_cast<uint32_t>(n);
    r.status = DecodeStatus::kFrame;
    r.frame.type = stream_type_;
    r.frame.length = stream_length_;
    r.frame.bytes = in.substr(0, n);
    r.frame.body = r.frame.bytes;
    r.frame.first = false;
    r.frame.last = remaining_ == 0;
    r.consumed = n;
    return r;
  }

  if (in.size() < kHeaderSize) return r;
  const char type = in[0];
  const uint32_t length = ReadUint32(in.substr(1));
  if (length < 4) {
    return Error(absl::InvalidArgumentError(
        absl::StrFormat("invalid message length %u for message type 0x%02x", length,
                        static_cast<unsigned char>(type))));
  }
  // Checked before waiting for the body so a peer cannot make us buffer past the limit.
  if (length > max_message_bytes_) {
    return Error(absl::InvalidArgumentError(
        absl::StrFormat("message length %u for message type 0x%02x exceeds the limit of %u bytes",
                        length, static_cast<unsigned char>(type), max_message_bytes_)));
  }

  const size_t total = static_cast<size_t>(length) + 1;
  r.frame.type = type;
  r.frame.length = length;

  if (streamable_.test(static_cast<unsigned char>(type)) && total > stream_threshold_) {
    const size_t avail = std::min(in.size(), total);
    r.status = DecodeStatus::kFrame;
    r.frame.bytes = in.substr(0, avail);
    r.frame.body = r.frame.bytes.substr(kHeaderSize);
    r.frame.first = true;
    r.frame.last = avail == total;
    r.consumed = avail;
    remaining_ = static_cast<uint32_t>(total - avail);
    stream_type_ = type;
    stream_length_ = length;
    return r;
  }

  if (in.size() < total) return DecodeResult{};
  r.status = DecodeStatus::kFrame;
  r.frame.bytes = in.substr(0, total);
  r.frame.body = r.frame.bytes.substr(kHeaderSize);
  r.consumed = total;
  return r;
}

StartupDecodeResult DecodeStartupPacket(std::string_view in) {
  StartupDecodeResult r;
  if (in.empty()) return r;
  // A valid length's first byte is 0 (lengths are at most 10000), so 0x16 can only be
  // a TLS handshake record; it stays in the buffer for the TLS layer.
  if (static_cast<unsigned char>(in[0]) == 0x16) {
    r.kind = StartupKind::kDirectTls;
    return r;
  }
  if (in.size() < 4) return r;
  const uint32_t length = ReadUint32(in);
  // 8 is the smallest packet that carries a request code.
  if (length < 8 || length > kMaxStartupPacketLength) {
    r.kind = StartupKind::kError;
    r.error = absl::InvalidArgumentError(absl::StrFormat(
        "invalid startup packet length %u (allowed 8 to %u)", length, kMaxStartupPacketLength));
    return r;
  }
  if (in.size() < length) return r;
  r.kind = StartupKind::kPacket;
  r.frame.type = 0;
  r.frame.length = length;
  r.frame.bytes = in.substr(0, length);
  r.frame.body = r.frame.bytes.substr(4);
  r.consumed = length;
  return r;
}

}  // namespace pgregion::protocol
