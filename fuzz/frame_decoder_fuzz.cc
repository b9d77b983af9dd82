// Fuzz target: protocol::MessageDecoder and DecodeStartupPacket.
//
// Property: the frames (or the error) a connection sees must not depend on how
// the peer's bytes were split into reads. The same input is fed whole and in
// fuzzer-chosen chunks through the loop a connection runs (append to a buffer,
// call Next until it needs more, drop what was consumed); streamed pieces are
// joined back into messages before comparing, since piece boundaries
// legitimately follow the reads.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/frame_decoder.h"
#include "protocol/messages.h"

namespace {

using pgregion::protocol::DecodeStartupPacket;
using pgregion::protocol::DecodeStatus;
using pgregion::protocol::MessageDecoder;
using pgregion::protocol::StartupKind;

struct Message {
  char type = 0;
  uint32_t length = 0;
  std::string bytes;  // header + body, joined over streamed pieces
  bool complete = false;
  bool operator==(const Message&) const = default;
};

struct Outcome {
  std::vector<Message> messages;
  std::string error;
  bool operator==(const Outcome&) const = default;
};

struct Config {
  uint32_t max_message_bytes;
  uint32_t stream_threshold;
  std::vector<char> streamable;
};

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "property violated: %s\n", what);
    abort();
  }
}

// Feeds `input` into a buffer in the fuzzer-chosen chunk sizes (the rest in
// one piece), as reads from a socket would arrive.
class ChunkFeeder {
 public:
  ChunkFeeder(std::string_view input, const std::vector<size_t>& chunk_sizes)
      : input_(input), chunk_sizes_(chunk_sizes) {}
  // Appends the next chunk to `buffer`; false when the input is used up.
  bool Next(std::string* buffer) {
    if (pos_ >= input_.size()) return false;
    size_t n = chunk_ < chunk_sizes_.size() ? chunk_sizes_[chunk_++] : input_.size() - pos_;
    n = std::min(std::max<size_t>(n, 1), input_.size() - pos_);
    buffer->append(input_.substr(pos_, n));
    pos_ += n;
    return true;
  }

 private:
  std::string_view input_;
  const std::vector<size_t>& chunk_sizes_;
  size_t pos_ = 0;
  size_t chunk_ = 0;
};

Outcome RunTagged(const Config& config, std::string_view input,
                  const std::vector<size_t>& chunk_sizes) {
  MessageDecoder decoder(config.max_message_bytes, config.stream_threshold);
  for (char t : config.streamable) decoder.SetStreamable(t, true);
  Outcome out;
  std::string buffer;
  ChunkFeeder feeder(input, chunk_sizes);
  while (feeder.Next(&buffer)) {
    for (;;) {
      auto r = decoder.Next(buffer);
      if (r.status == DecodeStatus::kNeedMore) {
        Check(r.consumed == 0, "kNeedMore consumed bytes");
        break;
      }
      if (r.status == DecodeStatus::kError) {
        Check(!r.error.ok(), "kError without an error status");
        out.error = std::string(r.error.message());
        return out;
      }
      const auto& f = r.frame;
      Check(r.consumed > 0 && r.consumed <= buffer.size(), "frame consumed nothing or too much");
      Check(f.bytes.data() == buffer.data() && f.bytes.size() == r.consumed,
            "frame bytes are not the consumed prefix");
      Check(f.length >= 4 && f.length <= config.max_message_bytes, "frame length out of range");
      if (f.first) {
        Check(f.body.size() + 5 == f.bytes.size(), "first piece body does not follow the header");
        out.messages.push_back(Message{f.type, f.length, std::string(f.bytes), f.last});
      } else {
        Check(!out.messages.empty() && !out.messages.back().complete,
              "continuation without an open message");
        Check(f.type == out.messages.back().type, "continuation type changed");
        out.messages.back().bytes.append(f.bytes);
        out.messages.back().complete = f.last;
      }
      Check(out.messages.back().bytes.size() <= size_t{f.length} + 1, "message longer than declared");
      if (out.messages.back().complete) {
        Check(out.messages.back().bytes.size() == size_t{f.length} + 1, "message shorter than declared");
      }
      Check(decoder.InStreamedMessage() == !f.last, "InStreamedMessage disagrees with last");
      buffer.erase(0, r.consumed);
    }
  }
  return out;
}

Outcome RunStartup(std::string_view input, const std::vector<size_t>& chunk_sizes) {
  Outcome out;
  std::string buffer;
  ChunkFeeder feeder(input, chunk_sizes);
  while (feeder.Next(&buffer)) {
    for (;;) {
      auto r = DecodeStartupPacket(buffer);
      if (r.kind == StartupKind::kNeedMore) break;
      if (r.kind == StartupKind::kDirectTls) {
        out.error = "direct tls";
        return out;
      }
      if (r.kind == StartupKind::kError) {
        out.error = std::string(r.error.message());
        return out;
      }
      Check(r.consumed >= 8 && r.consumed <= pgregion::protocol::kMaxStartupPacketLength &&
                r.consumed <= buffer.size(),
            "startup packet size out of range");
      Check(r.frame.body.size() + 4 == r.consumed, "startup body does not follow the length");
      // The packet parser must accept or reject any body without crashing.
      auto parsed = pgregion::protocol::ParseStartupPacket(r.frame.body);
      (void)parsed;
      out.messages.push_back(Message{0, r.frame.length, std::string(r.frame.bytes), true});
      buffer.erase(0, r.consumed);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  const bool startup = fdp.ConsumeBool();
  Config config;
  // Small limits so the fuzzer reaches the over-limit and streaming paths.
  config.max_message_bytes = fdp.ConsumeIntegralInRange<uint32_t>(4, 4096);
  config.stream_threshold = fdp.ConsumeIntegralInRange<uint32_t>(0, 512);
  const int n_streamable = fdp.ConsumeIntegralInRange<int>(0, 3);
  for (int i = 0; i < n_streamable; ++i) config.streamable.push_back(fdp.ConsumeIntegral<char>());
  std::vector<size_t> chunks;
  const int n_chunks = fdp.ConsumeIntegralInRange<int>(0, 16);
  for (int i = 0; i < n_chunks; ++i) chunks.push_back(fdp.ConsumeIntegralInRange<size_t>(1, 64));
  const std::string input = fdp.ConsumeRemainingBytesAsString();

  if (startup) {
    Check(RunStartup(input, {}) == RunStartup(input, chunks), "startup: chunked differs from whole");
  } else {
    Check(RunTagged(config, input, {}) == RunTagged(config, input, chunks),
          "tagged: chunked differs from whole");
  }
  return 0;
}
