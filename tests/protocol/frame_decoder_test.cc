#include "protocol/frame_decoder.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/messages.h"
#include "tests/protocol/decoder_checks.h"
#include "tests/test_util.h"

namespace pgregion::protocol {
namespace {

using ::pgregion::testing::CStr;
using ::pgregion::testing::Int16;
using ::pgregion::testing::Int32;
using ::pgregion::testing::MakeMsg;

using decoder_checks::CheckAllSplits;
using decoder_checks::CheckAllStartupSplits;
using decoder_checks::DecoderConfig;
using decoder_checks::FeedBuffered;
using decoder_checks::kNoStreaming;
using decoder_checks::MakeDecoder;
using decoder_checks::Msg;
using decoder_checks::Outcome;
using decoder_checks::RandomBytesLoop;
using decoder_checks::RandomStartupLoop;
using decoder_checks::StartupOutcome;

struct Expected {
  char type;
  uint32_t length;
};

struct DecoderCase {
  std::string name;
  DecoderConfig config;
  std::string input;
  std::vector<Expected> frames;  // complete messages expected from the one-shot decode
  bool error = false;
  std::string error_contains = "";
  size_t consumed = 0;
};

std::string DataRow(size_t value_size) {
  return MakeMsg(
      'D', Int16(1) + Int32(static_cast<uint32_t>(value_size)) + std::string(value_size, 'v'));
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
      {"pipeline with a partial tail",
       {},
       q + sync + q.substr(0, 7),
       {{'Q', 13}, {'S', 4}},
       false,
       "",
       q.size() + 5},
      {"unknown type byte is framed", {}, MakeMsg('\xff', "zz"), {{'\xff', 6}}, false, "", 7},
      {"NUL type byte is framed",
       {},
       std::string(1, '\0') + Int32(6) + "zz",
       {{'\0', 6}},
       false,
       "",
       7},
      {"length 3",
       {},
       std::string("Q") + Int32(3) + "abc",
       {},
       true,
       "invalid message length 3",
       0},
      {"length 0", {}, std::string("Q") + Int32(0), {}, true, "invalid message length 0", 0},
      {"length -1", {}, std::string("Q") + Int32(0xFFFFFFFF), {}, true, "exceeds the limit", 0},
      {"length at the limit", {104, kNoStreaming, ""}, big, {{'Q', 104}}, false, "", 105},
      {"length over the limit",
       {103, kNoStreaming, ""},
       big,
       {},
       true,
       "message length 104 for message type 0x51 exceeds the limit of 103 bytes",
       0},
      {"over the limit is checked before the body arrives",
       {103, kNoStreaming, ""},
       big.substr(0, 5),
       {},
       true,
       "exceeds the limit of 103",
       0},
      {"good frame then bad length",
       {},
       q + "X" + Int32(2),
       {{'Q', 13}},
       true,
       "invalid message length 2",
       q.size()},
      {"non-streamable type over the threshold is buffered whole",
       {1 << 20, 8, "D"},
       big,
       {{'Q', 104}},
       false,
       "",
       105},
      {"streamable type under the threshold is whole",
       {1 << 20, 200, "D"},
       DataRow(10),
       {{'D', 20}},
       false,
       "",
       21},
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
  CHECK(out.error_text.find("length 2010") != std::string::npos);
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

struct StartupCase {
  std::string name;
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
  std::string name;
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
      {"missing terminator", MakeMsg(0, Int32(kProtocolV3) + CStr("user") + CStr("alice")), false},
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

namespace pgregion::protocol {
namespace {

TEST_CASE("SplitWholeMessage: walks queued whole messages, stops at a partial one") {
  // Sync ('S', length 4), then Query "x" ('Q', length 6), then a cut-off header.
  std::string queued("S\0\0\0\x04Q\0\0\0\x06x\0Q\0\0", 15);
  std::string_view rest = queued;
  Frame f;
  REQUIRE(SplitWholeMessage(&rest, &f));
  CHECK(f.type == 'S');
  CHECK(f.length == 4);
  CHECK(f.bytes.size() == 5);
  CHECK(f.body.empty());
  REQUIRE(SplitWholeMessage(&rest, &f));
  CHECK(f.type == 'Q');
  CHECK(f.body == std::string_view("x\0", 2));
  CHECK(rest.size() == 3);
  CHECK_FALSE(SplitWholeMessage(&rest, &f));
  CHECK(rest.size() == 3);  // untouched
  std::string bad("S\0\0\0\x03", 5);  // a length below 4
  rest = bad;
  CHECK_FALSE(SplitWholeMessage(&rest, &f));
  CHECK(ReadUint32(std::string_view("\x01\x02\x03\x04", 4)) == 0x01020304u);
}

}  // namespace
}  // namespace pgregion::protocol
