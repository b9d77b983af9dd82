#include "protocol/frame_decoder.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/messages.h"
#include "tests/test_util.h"

namespace pgregion::protocol {
namespace {

using ::pgregion::testing::CStr;
using ::pgregion::testing::Int16;
using ::pgregion::testing::Int32;
using ::pgregion::testing::MakeMsg;

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

doctest::String toString(const Outcome& o) {
  std::string s = "{msgs=[";
  for (const Msg& m : o.msgs) {
    s += std::to_string(static_cast<unsigned char>(m.type)) + ":" + std::to_string(m.length) +
         "@" + std::to_string(m.begin) + "-" + std::to_string(m.end) + (m.complete ? " " : "+ ");
  }
  s += "] error=" + std::to_string(o.error) + " '" + o.error_text +
       "' consumed=" + std::to_string(o.consumed) + "}";
  return doctest::String(s.c_str());
}

MessageDecoder MakeDecoder(const DecoderConfig& c) {
  MessageDecoder d(c.max_message_bytes, c.stream_threshold);
  for (char t : c.streamable) d.SetStreamable(t, true);
  return d;
}

// Checks one decoded piece against the frame contract and folds it into `out`.
// Reports only failures to doctest: this runs millions of times.
bool Record(const MessageDecoder& dec, const DecodeResult& r, std::string_view window,
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
    const bool header_ok = f.bytes.size() >= 5 && f.bytes[0] == f.type &&
                           f.body.data() == f.bytes.data() + 5 &&
                           f.body.size() == f.bytes.size() - 5 &&
                           (!f.last || f.bytes.size() == size_t{f.length} + 1);
    if (!header_ok || (!out.msgs.empty() && !out.msgs.back().complete)) {
      FAIL_CHECK("bad first piece at offset " << offset);
      return false;
    }
    out.msgs.push_back(Msg{f.type, f.length, offset, offset + r.consumed, f.last});
  } else {
    const bool cont_ok = !out.msgs.empty() && !out.msgs.back().complete &&
                         out.msgs.back().end == offset && out.msgs.back().type == f.type &&
                         out.msgs.back().length == f.length && f.body == f.bytes;
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
Outcome Feed(const DecoderConfig& c, std::string_view in, const std::vector<size_t>& cuts) {
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
Outcome FeedBuffered(const DecoderConfig& c, std::string_view in, size_t read_size,
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
Outcome CheckAllSplits(const DecoderConfig& c, std::string_view in) {
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
void RandomBytesLoop(const DecoderConfig& c, uint32_t seed, int iterations = 2000) {
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
        in += MakeMsg(type, body);
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

struct Expected {
  char type;
  uint32_t length;
};

struct DecoderCase {
  const char* name;
  DecoderConfig config;
  std::string input;
  std::vector<Expected> frames;  // complete messages expected from the one-shot decode
  bool error = false;
  std::string error_contains = "";
  size_t consumed = 0;
};

std::string DataRow(size_t value_size) {
  return MakeMsg('D', Int16(1) + Int32(static_cast<uint32_t>(value_size)) +
                          std::string(value_size, 'v'));
}

TEST_CASE("MessageDecoder: table of whole-message inputs") {
  const std::string q = MakeMsg('Q', CStr("SELECT 1"));
  const std::string sync = MakeMsg('S', "");
  const std::string big = MakeMsg('Q', std::string(100, 'a'));  // length 104
  const std::vector<DecoderCase> cases = {
      {"empty input", {}, "", {}, false, "", 0},
      {"one byte", {}, "Q", {}, false, "", 0},
      {"four bytes", {}, q.substr(0, 4), {}, false, "", 0},
      {"header only", {}, q.substr(0, 5), {}, false, "", 0},
      {"one Query", {}, q, {{'Q', 13}}, false, "", q.size()},
      {"Query missing its last byte", {}, q.substr(0, q.size() - 1), {}, false, "", 0},
      {"empty body", {}, sync, {{'S', 4}}, false, "", 5},
      {"pipeline", {}, q + sync + q, {{'Q', 13}, {'S', 4}, {'Q', 13}}, false, "", 2 * q.size() + 5},
      {"pipeline with a partial tail", {}, q + sync + q.substr(0, 7), {{'Q', 13}, {'S', 4}}, false,
       "", q.size() + 5},
      {"unknown type byte is framed", {}, MakeMsg('\xff', "zz"), {{'\xff', 6}}, false, "", 7},
      {"NUL type byte is framed", {}, MakeMsg('\0', "zz"), {{'\0', 6}}, false, "", 7},
      {"length 3", {}, std::string("Q") + Int32(3) + "abc", {}, true, "invalid message length 3",
       0},
      {"length 0", {}, std::string("Q") + Int32(0), {}, true, "invalid message length 0", 0},
      {"length -1", {}, std::string("Q") + Int32(0xFFFFFFFF), {}, true, "exceeds the limit", 0},
      {"length at the limit", {104, kNoStreaming, ""}, big, {{'Q', 104}}, false, "", 105},
      {"length over the limit", {103, kNoStreaming, ""}, big, {}, true,
       "message length 104 for message type 0x51 exceeds the limit of 103 bytes", 0},
      {"over the limit is checked before the body arrives", {103, kNoStreaming, ""},
       big.substr(0, 5), {}, true, "exceeds the limit of 103", 0},
      {"good frame then bad length", {}, q + "X" + Int32(2), {{'Q', 13}}, true,
       "invalid message length 2", q.size()},
      {"non-streamable type over the threshold is buffered whole", {1 << 20, 8, "D"}, big,
       {{'Q', 104}}, false, "", 105},
      {"streamable type under the threshold is whole", {1 << 20, 200, "D"}, DataRow(10),
       {{'D', 20}}, false, "", 21},
  };
  uint32_t seed = 1;
  for (const DecoderCase& tc : cases) {
    CAPTURE(tc.name);
    const Outcome out = CheckAllSplits(tc.config, tc.input);
    std::vector<Msg> complete;
    for (const Msg& m : out.msgs) {
      if (m.complete) complete.push_back(m);
    }
    REQUIRE(complete.size() == tc.frames.size());
    for (size_t i = 0; i < complete.size(); ++i) {
      CHECK(complete[i].type == tc.frames[i].type);
      CHECK(complete[i].length == tc.frames[i].length);
    }
    CHECK(out.error == tc.error);
    CHECK(out.error_text.find(tc.error_contains) != std::string::npos);
    CHECK(out.consumed == tc.consumed);
    RandomBytesLoop(tc.config, seed++, 200);
  }
}

TEST_CASE("MessageDecoder: a whole frame views the input") {
  const std::string in = MakeMsg('Q', CStr("SELECT 1")) + "Z";
  MessageDecoder dec(1024, kNoStreaming);
  const DecodeResult r = dec.Next(in);
  REQUIRE(r.status == DecodeStatus::kFrame);
  CHECK(r.frame.type == 'Q');
  CHECK(r.frame.length == 13);
  CHECK(r.frame.bytes.data() == in.data());
  CHECK(r.frame.bytes == in.substr(0, 14));
  CHECK(r.frame.body == CStr("SELECT 1"));
  CHECK(r.frame.first);
  CHECK(r.frame.last);
  CHECK(r.consumed == 14);
  CHECK_FALSE(dec.InStreamedMessage());
  CheckAllSplits({1024, kNoStreaming, ""}, in);
  RandomBytesLoop({1024, kNoStreaming, ""}, 101);
}

TEST_CASE("MessageDecoder: streaming hands out the header first, then continuations") {
  const std::string row = DataRow(100);  // 111 bytes
  const std::string next = MakeMsg('C', CStr("SELECT 1"));
  const DecoderConfig config{1 << 20, 64, "D"};
  MessageDecoder dec = MakeDecoder(config);

  const std::string_view in = row;
  DecodeResult r = dec.Next(in.substr(0, 4));
  CHECK(r.status == DecodeStatus::kNeedMore);

  r = dec.Next(in.substr(0, 5));
  REQUIRE(r.status == DecodeStatus::kFrame);
  CHECK(r.frame.first);
  CHECK_FALSE(r.frame.last);
  CHECK(r.frame.type == 'D');
  CHECK(r.frame.length == 110);
  CHECK(r.frame.body.empty());
  CHECK(r.consumed == 5);
  CHECK(dec.InStreamedMessage());

  // Never a zero-length continuation: a caller looping on kFrame would spin.
  r = dec.Next("");
  CHECK(r.status == DecodeStatus::kNeedMore);
  CHECK(r.consumed == 0);

  r = dec.Next(in.substr(5, 50));
  REQUIRE(r.status == DecodeStatus::kFrame);
  CHECK_FALSE(r.frame.first);
  CHECK_FALSE(r.frame.last);
  CHECK(r.frame.bytes == in.substr(5, 50));
  CHECK(r.frame.body == r.frame.bytes);
  CHECK(r.frame.length == 110);
  CHECK(r.consumed == 50);

  // The rest of the row and the next message in one read: the piece stops at the row's end.
  const std::string tail = row.substr(55) + next;
  r = dec.Next(tail);
  REQUIRE(r.status == DecodeStatus::kFrame);
  CHECK(r.frame.last);
  CHECK(r.consumed == row.size() - 55);
  CHECK_FALSE(dec.InStreamedMessage());

  r = dec.Next(std::string_view(tail).substr(r.consumed));
  REQUIRE(r.status == DecodeStatus::kFrame);
  CHECK(r.frame.type == 'C');
  CHECK(r.frame.first);
  CHECK(r.frame.last);

  const Outcome out = CheckAllSplits(config, row + next + row);
  REQUIRE(out.msgs.size() == 3);
  CHECK(out.msgs[0] == Msg{'D', 110, 0, row.size(), true});
  CHECK(out.msgs[1] == Msg{'C', 13, row.size(), row.size() + next.size(), true});
  CHECK(out.msgs[2].complete);
  CHECK(out.consumed == 2 * row.size() + next.size());
  RandomBytesLoop(config, 102);
}

TEST_CASE("MessageDecoder: a streamed message whole in one read is one piece") {
  const std::string row = DataRow(100);
  const DecoderConfig config{1 << 20, 64, "D"};
  MessageDecoder dec = MakeDecoder(config);
  const std::string in = row + "trailing";
  const DecodeResult r = dec.Next(in);
  REQUIRE(r.status == DecodeStatus::kFrame);
  CHECK(r.frame.first);
  CHECK(r.frame.last);
  CHECK(r.frame.bytes == row);
  CHECK(r.consumed == row.size());
  CHECK_FALSE(dec.InStreamedMessage());
  const Outcome out = CheckAllSplits(config, row);
  CHECK(out.pieces == 1);
  RandomBytesLoop(config, 103);
}

TEST_CASE("MessageDecoder: streaming of a truncated message ends mid-message") {
  const std::string row = DataRow(100);
  const DecoderConfig config{1 << 20, 0, "D"};
  const Outcome out = CheckAllSplits(config, std::string_view(row).substr(0, 60));
  REQUIRE(out.msgs.size() == 1);
  CHECK_FALSE(out.msgs[0].complete);
  CHECK(out.consumed == 60);
  CHECK_FALSE(out.error);
  RandomBytesLoop(config, 104);
}

TEST_CASE("MessageDecoder: the length limit applies to streamed messages too") {
  const DecoderConfig config{1000, 64, "D"};
  const Outcome out = CheckAllSplits(config, DataRow(2000).substr(0, 100));
  CHECK(out.error);
  CHECK(out.error_text.find("2011") != std::string::npos);
  CHECK(out.error_text.find("1000") != std::string::npos);
  CHECK(out.msgs.empty());
  RandomBytesLoop(config, 105);
}

TEST_CASE("MessageDecoder: a 1 MB DataRow streams through 4 KiB reads") {
  const std::string row = DataRow(1 << 20);
  const std::string next = MakeMsg('Z', "I");
  const std::string in = row + next;
  const DecoderConfig config{2 << 20, 8192, "Dd"};

  size_t max_buffered = 0;
  const Outcome out = FeedBuffered(config, in, 4096, &max_buffered);
  REQUIRE(out.msgs.size() == 2);
  CHECK(out.msgs[0] == Msg{'D', static_cast<uint32_t>(row.size() - 1), 0, row.size(), true});
  CHECK(out.msgs[1] == Msg{'Z', 5, row.size(), in.size(), true});
  CHECK(out.consumed == in.size());
  // Bytes are handed on per read, never accumulated (FeedBuffered compared every byte).
  CHECK(max_buffered <= 4096 + next.size());
  CHECK(out.pieces >= (row.size() / 4096));

  const Outcome one = CheckAllSplits(config, in);
  CHECK(one == out);
  RandomBytesLoop(config, 106);
}

TEST_CASE("MessageDecoder: random bytes never break the decoder") {
  const std::vector<DecoderConfig> configs = {
      {}, {64, kNoStreaming, ""}, {1 << 20, 0, "D"}, {100, 10, "Dd\xff"}, {4, 0, "D"}};
  uint32_t seed = 200;
  for (const DecoderConfig& c : configs) {
    CAPTURE(c.max_message_bytes);
    CAPTURE(c.stream_threshold);
    RandomBytesLoop(c, seed++);
    CheckAllSplits(c, MakeMsg('D', std::string(30, 'r')) + MakeMsg('S', ""));
  }
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
StartupOutcome FeedStartup(std::string_view in, const std::vector<size_t>& cuts) {
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
                      r.frame.bytes.data() == window.data() &&
                      r.frame.bytes.size() == r.consumed && r.frame.length == r.consumed &&
                      r.frame.type == 0 && r.frame.body.data() == window.data() + 4 &&
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

StartupOutcome CheckAllStartupSplits(std::string_view in) {
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

void RandomStartupLoop(uint32_t seed, int iterations = 2000) {
  std::mt19937 rng(seed);
  auto rand = [&](uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n)(rng); };
  for (int i = 0; i < iterations; ++i) {
    std::string in;
    if (rand(1) == 0) {
      in.resize(rand(64));
      for (char& ch : in) ch = static_cast<char>(rand(255));
    } else {
      in = MakeMsg(0, Int32(kProtocolV3) + CStr("user") + CStr("u") + CStr(""));
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

struct StartupCase {
  const char* name;
  std::string input;
  size_t packets;
  bool direct_tls;
  bool error;
  std::string error_contains = "";
};

std::string Startup(uint32_t version, const std::vector<std::string>& kv) {
  std::string body = Int32(version);
  for (const std::string& s : kv) body += CStr(s);
  return MakeMsg(0, body + CStr(""));
}

TEST_CASE("DecodeStartupPacket: table") {
  const std::string v30 = Startup(kProtocolV3, {"user", "alice", "database", "app"});
  const std::string ssl = MakeMsg(0, Int32(kSslRequestCode));
  const std::string tls_hello = "\x16\x03\x01\x02\x00\x01";
  const std::vector<StartupCase> cases = {
      {"empty", "", 0, false, false},
      {"three bytes", v30.substr(0, 3), 0, false, false},
      {"partial packet", v30.substr(0, v30.size() - 1), 0, false, false},
      {"protocol 3.0", v30, 1, false, false},
      {"SSLRequest", ssl, 1, false, false},
      {"GSSENCRequest", MakeMsg(0, Int32(kGssEncRequestCode)), 1, false, false},
      {"CancelRequest", MakeMsg(0, Int32(kCancelRequestCode) + Int32(7) + Int32(9)), 1, false,
       false},
      {"direct TLS", tls_hello, 0, true, false},
      {"direct TLS, first byte only", "\x16", 0, true, false},
      {"SSLRequest then StartupMessage", ssl + v30, 2, false, false},
      {"SSLRequest then a TLS ClientHello", ssl + tls_hello, 1, true, false},
      {"length 7", Int32(7) + "abcd", 0, false, true, "invalid startup packet length 7"},
      {"length 0", Int32(0), 0, false, true, "invalid startup packet length 0"},
      {"length 10001", Int32(10001), 0, false, true, "10001"},
      {"length 10000 arrives whole", MakeMsg(0, std::string(9996, 'x')), 1, false, false},
      {"huge length", Int32(0x7FFFFFFF), 0, false, true, "invalid startup packet length"},
  };
  uint32_t seed = 300;
  for (const StartupCase& tc : cases) {
    CAPTURE(tc.name);
    const StartupOutcome out = CheckAllStartupSplits(tc.input);
    CHECK(out.packets.size() == tc.packets);
    CHECK(out.direct_tls == tc.direct_tls);
    CHECK(out.error == tc.error);
    CHECK(out.error_text.find(tc.error_contains) != std::string::npos);
    RandomStartupLoop(seed++, 100);
  }
}

TEST_CASE("DecodeStartupPacket: direct TLS consumes nothing") {
  const std::string in = "\x16\x03\x01";
  const StartupDecodeResult r = DecodeStartupPacket(in);
  CHECK(r.kind == StartupKind::kDirectTls);
  CHECK(r.consumed == 0);
  CheckAllStartupSplits(in);
  RandomStartupLoop(401);
}

struct StartupParseCase {
  const char* name;
  std::string packet;
  bool ok;
  StartupPacketKind kind = StartupPacketKind::kStartup;
  uint16_t minor = 0;
  size_t params = 0;
};

TEST_CASE("DecodeStartupPacket + ParseStartupPacket: packets from real clients") {
  const std::vector<StartupParseCase> cases = {
      {"libpq 3.0", Startup(kProtocolV3, {"user", "alice", "database", "app"}), true,
       StartupPacketKind::kStartup, 0, 2},
      {"libpq 18 asks 3.2", Startup(kProtocolV3 | 2, {"user", "alice"}), true,
       StartupPacketKind::kStartup, 2, 1},
      {"libpq 19 sends 3.9999 with _pq_ options",
       Startup(kProtocolV3 | 9999, {"user", "alice", "_pq_.test_protocol_negotiation", "on",
                                    "options", "-c pgregion.consistency=strong"}),
       true, StartupPacketKind::kStartup, 9999, 3},
      {"SSLRequest", MakeMsg(0, Int32(kSslRequestCode)), true, StartupPacketKind::kSslRequest},
      {"GSSENCRequest", MakeMsg(0, Int32(kGssEncRequestCode)), true,
       StartupPacketKind::kGssEncRequest},
      {"CancelRequest", MakeMsg(0, Int32(kCancelRequestCode) + Int32(1234) + Int32(5678)), true,
       StartupPacketKind::kCancel},
      {"missing terminator", MakeMsg(0, Int32(kProtocolV3) + CStr("user") + CStr("alice")),
       false},
      {"protocol 2.0", Startup(2 << 16, {"user", "alice"}), false},
      {"protocol 4.0", Startup(4 << 16, {"user", "alice"}), false},
  };
  for (const StartupParseCase& tc : cases) {
    CAPTURE(tc.name);
    const StartupOutcome framed = CheckAllStartupSplits(tc.packet);
    REQUIRE(framed.packets.size() == 1);
    const StartupDecodeResult r = DecodeStartupPacket(tc.packet);
    REQUIRE(r.kind == StartupKind::kPacket);
    const absl::StatusOr<StartupPacket> p = ParseStartupPacket(r.frame.body);
    REQUIRE(p.ok() == tc.ok);
    if (!tc.ok) continue;
    CHECK(p->kind == tc.kind);
    if (tc.kind == StartupPacketKind::kStartup) {
      CHECK(p->startup.major == 3);
      CHECK(p->startup.minor == tc.minor);
      CHECK(p->startup.params.size() == tc.params);
    }
    if (tc.kind == StartupPacketKind::kCancel) {
      CHECK(p->cancel.pid == 1234);
      CHECK(p->cancel.secret == 5678);
    }
  }
  RandomStartupLoop(402);
}

}  // namespace
}  // namespace pgregion::protocol
