// Incremental framing of the PostgreSQL wire protocol (v3).
//
// Owns no bytes: callers keep their own receive buffer and call Next() with the
// unconsumed part of it. Frames are views into that buffer and live only as long
// as the caller keeps those bytes. Pure, single-threaded (one decoder per
// direction of one connection). Never consumes a partial frame, except for
// message types the caller declared streamable: those are handed out in pieces
// so large DataRow / CopyData messages stream through without being buffered
// whole (memory stays bounded by the caller's read size).
#pragma once

#include <bitset>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"

namespace pgregion::protocol {

enum class DecodeStatus {
  kNeedMore,  // not enough bytes yet; nothing consumed
  kFrame,     // `frame` is valid; `consumed` bytes of the input belong to it
  kError,     // framing is broken (bad length, over the limit); `error` says why
};

struct Frame {
  // Message type byte; 0 for the untagged packets of the startup phase.
  char type = 0;
  // Declared length of the whole message, including the 4 length bytes (not the type byte).
  uint32_t length = 0;
  // The original bytes of this piece as received (header included on the first piece).
  std::string_view bytes;
  // Message body (after the header) in this piece.
  std::string_view body;
  // Streaming: true when this piece is not the whole message.
  bool first = true;  // piece carries the header
  bool last = true;   // piece ends the message
};

struct DecodeResult {
  DecodeStatus status = DecodeStatus::kNeedMore;
  Frame frame;
  size_t consumed = 0;
  absl::Status error;
};

// A big-endian int32 from the first 4 bytes of `in` (at least 4 bytes long).
uint32_t ReadUint32(std::string_view in);

// Splits the first whole message off `*rest`: bytes a MessageDecoder already
// framed and checked, queued whole (the proxy's own buffers). Returns false,
// leaving `*rest` as it is, when `*rest` does not start with a whole message.
bool SplitWholeMessage(std::string_view* rest, Frame* frame);

// Tagged messages: 1 type byte, int32 length (self-inclusive), body.
class MessageDecoder {
 public:
  // `max_message_bytes`: declared lengths above it are an error (checked before buffering).
  // `stream_threshold`: messages of a streamable type larger than this are handed out in pieces.
  MessageDecoder(uint32_t max_message_bytes, uint32_t stream_threshold);

  // Marks message types that may be streamed in pieces (e.g. 'D', 'd').
  void SetStreamable(char type, bool streamable);

  [[nodiscard]] DecodeResult Next(std::string_view in);

  // True while in the middle of a streamed message.
  bool InStreamedMessage() const { return remaining_ > 0; }

  // Changes the limit for messages whose header has not been read yet: the
  // startup phase uses PostgreSQL's small authentication limit, the data phase
  // the configured one.
  void set_max_message_bytes(uint32_t max_message_bytes) { max_message_bytes_ = max_message_bytes; }
  uint32_t max_message_bytes() const { return max_message_bytes_; }

 private:
  uint32_t max_message_bytes_;
  uint32_t stream_threshold_;
  std::bitset<256> streamable_;  // 32 bytes in every session, not 256
  // Streaming state: type and bytes of the current message still to come.
  char stream_type_ = 0;
  uint32_t stream_length_ = 0;
  uint32_t remaining_ = 0;
};

// Startup phase packets: untagged int32 length + body. Also recognizes a TLS
// ClientHello (first byte 0x16, PostgreSQL 17 direct TLS) without consuming it.
enum class StartupKind { kNeedMore, kPacket, kDirectTls, kError };

struct StartupDecodeResult {
  StartupKind kind = StartupKind::kNeedMore;
  Frame frame;  // type is 0; body is the packet after the length
  size_t consumed = 0;
  absl::Status error;
};

// PostgreSQL's own limit for startup packets.
inline constexpr uint32_t kMaxStartupPacketLength = 10000;
// PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH (src/backend/libpq/auth.c): the largest
// PasswordMessage / SASLInitialResponse / SASLResponse accepted before login.
// The declared length includes the 4 length bytes.
inline constexpr uint32_t kMaxAuthMessageLength = 65535;

[[nodiscard]] StartupDecodeResult DecodeStartupPacket(std::string_view in);

}  // namespace pgregion::protocol
