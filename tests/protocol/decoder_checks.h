// Checks every decoder test runs: the input split at every byte boundary (and fed one byte at
// a time through a real buffer) must reassemble to the one-shot result, and bounded loops of
// random and mutated bytes must yield only need-more, a frame, or an error, consuming no more
// than the input. Shared so that tests of other layers can hold recorded traffic to the same bar.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/frame_decoder.h"
#include "protocol/messages.h"
#include "tests/test_util.h"

namespace pgregion::protocol::decoder_checks {

constexpr uint32_t kNoStreaming = std::numeric_limits<uint32_t>::max();

struct DecoderConfig {
  uint32_t max_message_bytes = 1 << 20;
  uint32_t stream_threshold = kNoStreaming;
  std::string streamable = "dD";
};

// One message as reassembled from its pieces; offsets into the whole input.
struct Msg {
  char type = 0;
  uint32_t length = 0;
  size_t begin = 0;
  size_t end = 0;
  bool complete = false;
  bool operator==(const Msg&) const = default;
};

struct Outcome {
  std::vector<Msg> msgs;
  size_t pieces = 0;
  bool error = false;
  std::string error_text;
  size_t consumed = 0;
  bool operator==(const Outcome& o) const {
    return msgs == o.msgs && error == o.error && error_text == o.error_text &&
           consumed == o.consumed;
  }
};

inline doctest::String toString(const Outcome& o) {
  std::string s = "{msgs=[";
  for (const Msg& m : o.msgs) {
    s += std::to_string(static_cast<unsigned char>(m.type)) + ":" + std::to_string(m.length) + "@" +
         std::to_string(m.begin) + "-" + std::to_string(m.end) + (m.complete ? " " : "+ ");
  }
  s += "] error=" + std::to_string(o.error) + " '" + o.error_text +
       "' consumed=" + std::to_string(o.consumed) + "}";
  return doctest::String(s.c_str());
}

inline MessageDecoder MakeDecoder(const DecoderConfig& c) {
  MessageDecoder d(c.max_message_bytes, c.stream_threshold);
  for (char t : c.streamable) d.SetStreamable(t, true);
  return d;
}

// Checks one decoded piece against the frame contract and folds it into `out`.
// Reports only failures to doctest: this runs millions of times.
inline bool Record(const MessageDecoder& dec, const DecodeResult& r, std::string_view window,
                   size_t offset, Outcome& out) {
  const Frame& f = r.frame;
  const bool piece_ok = r.consumed > 0 && r.consumed <= window.size() &&
                        f.bytes.data() == window.data() && f.bytes.size() == r.consumed &&
                        dec.InStreamedMessage() == !f.last;
  if (!piece_ok) {
    FAIL_CHECK("bad piece at offset " << offset << " consumed " << r.consumed);
    return false;
  }
  ++out.pieces;
  if (f.first) {
    const bool header_ok =
        f.bytes.size() >= 5 && f.bytes[0] == f.type && f.body.data() == f.bytes.data() + 5 &&
        f.body.size() == f.bytes.size() - 5 && (!f.last || f.bytes.size() == size_t{f.length} + 1);
    if (!header_ok || (!out.msgs.empty() && !out.msgs.back().complete)) {
      FAIL_CHECK("bad first piece at offset " << offset);
      return false;
    }
    out.msgs.push_back(Msg{f.type, f.length, offset, offset + r.consumed, f.last});
  } else {
    const bool cont_ok = !out.msgs.empty() && !out.msgs.back().complete &&
                         out.msgs.back().end == offset && out.msgs.back().type == f.type &&
                         out.msgs.back().length == f.length && f.body.data() == f.bytes.data() &&
                         f.body.size() == f.bytes.size();
    if (!cont_ok) {
      FAIL_CHECK("bad continuation at offset " << offset);
      return false;
    }
    out.msgs.back().end += r.consumed;
    out.msgs.back().complete = f.last;
  }
  if (out.msgs.back().complete &&
      out.msgs.back().end - out.msgs.back().begin != size_t{f.length} + 1) {
    FAIL_CHECK("reassembled size differs from declared length at offset " << offset);
    return false;
  }
  return true;
}

// Feeds `in` in chunks ending at `cuts` (ascending, last == in.size()). The decoder sees the
// window [consumed, fed) of the input: exactly what an append-and-erase buffer would hold,
// without copying, so splitting a megabyte at every byte stays cheap.
inline Outcome Feed(const DecoderConfig& c, std::string_view in, const std::vector<size_t>& cuts) {
  MessageDecoder dec = MakeDecoder(c);
  Outcome out;
  for (size_t fed : cuts) {
    for (;;) {
      const std::string_view window = in.substr(out.consumed, fed - out.consumed);
      const DecodeResult r = dec.Next(window);
      if (r.status == DecodeStatus::kNeedMore) {
        if (r.consumed != 0) FAIL_CHECK("kNeedMore consumed bytes");
        break;
      }
      if (r.status == DecodeStatus::kError) {
        out.error = true;
        out.error_text = std::string(r.error.message());
        if (r.error.ok()) FAIL_CHECK("kError with an OK status");
        return out;
      }
      if (!Record(dec, r, window, out.consumed, out)) return out;
      out.consumed += r.consumed;
    }
  }
  return out;
}

// The way the proxy drives the decoder: a real buffer, appended to per read, erased as consumed.
inline Outcome FeedBuffered(const DecoderConfig& c, std::string_view in, size_t read_size,
                            size_t* max_buffered = nullptr) {
  MessageDecoder dec = MakeDecoder(c);
  Outcome out;
  std::string buf;
  for (size_t pos = 0; pos < in.size();) {
    const size_t n = std::min(read_size, in.size() - pos);
    buf.append(in.substr(pos, n));
    pos += n;
    if (max_buffered != nullptr) *max_buffered = std::max(*max_buffered, buf.size());
    size_t used = 0;
    for (;;) {
      const std::string_view window = std::string_view(buf).substr(used);
      const DecodeResult r = dec.Next(window);
      if (r.status == DecodeStatus::kNeedMore) break;
      if (r.status == DecodeStatus::kError) {
        out.error = true;
        out.error_text = std::string(r.error.message());
        return out;
      }
      if (r.frame.bytes != in.substr(out.consumed, r.consumed)) {
        FAIL_CHECK("piece bytes differ from the input at offset " << out.consumed);
        return out;
      }
      if (!Record(dec, r, window, out.consumed, out)) return out;
      out.consumed += r.consumed;
      used += r.consumed;
    }
    buf.erase(0, used);
  }
  return out;
}

// The one-shot result, after checking that every two-chunk split and byte-at-a-time feeding
// reassemble to the same messages.
inline Outcome CheckAllSplits(const DecoderConfig& c, std::string_view in) {
  const Outcome one = Feed(c, in, {in.size()});
  for (size_t k = 0; k <= in.size(); ++k) {
    const Outcome split = Feed(c, in, {k, in.size()});
    if (!(split == one)) {
      CHECK_MESSAGE(split == one, "split at byte " << k);
      break;
    }
  }
  CHECK(FeedBuffered(c, in, 1) == one);
  return one;
}

// Garbage, and well-formed streams with bytes flipped or cut, must only ever yield the three
// results with consumed within the input, whatever the chunking.
inline void RandomBytesLoop(const DecoderConfig& c, uint32_t seed, int iterations = 2000) {
  std::mt19937 rng(seed);
  auto rand = [&](uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n)(rng); };
  int errors = 0;
  int frames = 0;
  for (int i = 0; i < iterations; ++i) {
    std::string in;
    if (rand(1) == 0) {
      in.resize(rand(64));
      for (char& ch : in) ch = static_cast<char>(rand(255));
    } else {
      const uint32_t count = rand(4);
      for (uint32_t m = 0; m < count; ++m) {
        std::string body(rand(40), 'x');
        const char type = rand(1) == 0 ? 'D' : static_cast<char>(rand(255));
        in += ::pgregion::testing::MakeMsg(type, body);
      }
      for (uint32_t flips = rand(2); flips > 0 && !in.empty(); --flips) {
        in[rand(static_cast<uint32_t>(in.size() - 1))] = static_cast<char>(rand(255));
      }
      in.resize(rand(static_cast<uint32_t>(in.size())));
    }
    std::vector<size_t> cuts;
    for (uint32_t k = rand(3); k > 0; --k) cuts.push_back(rand(static_cast<uint32_t>(in.size())));
    std::sort(cuts.begin(), cuts.end());
    cuts.push_back(in.size());
    const Outcome one = Feed(c, in, {in.size()});
    const Outcome chunked = Feed(c, in, cuts);
    if (!(chunked == one) || one.consumed > in.size()) {
      CHECK_MESSAGE(chunked == one, "random input " << i);
      return;
    }
    errors += one.error;
    frames += static_cast<int>(one.msgs.size());
  }
  // Guards against a generator that only ever exercises one path.
  CHECK(errors > 0);
  CHECK(frames > 0);
}

// ---- Startup packets ----

struct StartupOutcome {
  std::vector<std::pair<size_t, size_t>> packets;  // [begin, end)
  bool direct_tls = false;
  bool error = false;
  std::string error_text;
  size_t consumed = 0;
  bool operator==(const StartupOutcome&) const = default;
};

// Decodes packets back to back, as the proxy does before the first tagged message (the
// SSLRequest, then the StartupMessage once TLS is up), over the window [consumed, fed).
inline StartupOutcome FeedStartup(std::string_view in, const std::vector<size_t>& cuts) {
  StartupOutcome out;
  for (size_t fed : cuts) {
    for (;;) {
      const std::string_view window = in.substr(out.consumed, fed - out.consumed);
      const StartupDecodeResult r = DecodeStartupPacket(window);
      if (r.kind == StartupKind::kNeedMore) {
        if (r.consumed != 0) FAIL_CHECK("kNeedMore consumed bytes");
        break;
      }
      if (r.kind == StartupKind::kDirectTls) {
        if (r.consumed != 0) FAIL_CHECK("kDirectTls consumed bytes");
        out.direct_tls = true;
        return out;
      }
      if (r.kind == StartupKind::kError) {
        out.error = true;
        out.error_text = std::string(r.error.message());
        return out;
      }
      const bool ok = r.consumed >= 8 && r.consumed <= window.size() &&
                      r.frame.bytes.data() == window.data() && r.frame.bytes.size() == r.consumed &&
                      r.frame.length == r.consumed && r.frame.type == 0 &&
                      r.frame.body.data() == window.data() + 4 &&
                      r.frame.body.size() == r.consumed - 4 && r.frame.first && r.frame.last;
      if (!ok) {
        FAIL_CHECK("bad startup packet frame at offset " << out.consumed);
        return out;
      }
      out.packets.emplace_back(out.consumed, out.consumed + r.consumed);
      out.consumed += r.consumed;
    }
  }
  return out;
}

inline StartupOutcome CheckAllStartupSplits(std::string_view in) {
  const StartupOutcome one = FeedStartup(in, {in.size()});
  for (size_t k = 0; k <= in.size(); ++k) {
    const StartupOutcome split = FeedStartup(in, {k, in.size()});
    if (!(split == one)) {
      CHECK_MESSAGE(split == one, "split at byte " << k);
      break;
    }
  }
  std::vector<size_t> bytewise;
  for (size_t k = 1; k <= in.size(); ++k) bytewise.push_back(k);
  if (!in.empty()) CHECK(FeedStartup(in, bytewise) == one);
  return one;
}

inline void RandomStartupLoop(uint32_t seed, int iterations = 2000) {
  std::mt19937 rng(seed);
  auto rand = [&](uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n)(rng); };
  for (int i = 0; i < iterations; ++i) {
    std::string in;
    if (rand(1) == 0) {
      in.resize(rand(64));
      for (char& ch : in) ch = static_cast<char>(rand(255));
    } else {
      using ::pgregion::testing::CStr;
      using ::pgregion::testing::Int32;
      in =
          ::pgregion::testing::MakeMsg(0, Int32(kProtocolV3) + CStr("user") + CStr("u") + CStr(""));
      in[rand(static_cast<uint32_t>(in.size() - 1))] = static_cast<char>(rand(255));
      in.resize(rand(static_cast<uint32_t>(in.size())));
    }
    const StartupOutcome one = FeedStartup(in, {in.size()});
    const size_t cut = rand(static_cast<uint32_t>(in.size()));
    const StartupOutcome split = FeedStartup(in, {cut, in.size()});
    if (!(split == one) || one.consumed > in.size()) {
      CHECK_MESSAGE(split == one, "random input " << i);
      return;
    }
    // Whatever the framing, parsing the bodies must fail cleanly rather than misbehave.
    for (const auto& [begin, end] : one.packets) {
      (void)ParseStartupPacket(std::string_view(in).substr(begin + 4, end - begin - 4));
    }
  }
}

}  // namespace pgregion::protocol::decoder_checks
