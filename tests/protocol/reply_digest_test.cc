#include "protocol/reply_digest.h"

#include <doctest/doctest.h>

#include <string>

#include "protocol/message_builder.h"

namespace p = pgregion::protocol;

namespace {

std::string Replies(std::string_view row, std::string_view tag, std::string_view sqlstate = "",
                    std::string_view message = "boom") {
  std::string out;
  p::MessageWriter(&out).Begin('1').End();  // ParseComplete: not digested
  p::AppendRowDescription(&out, {"a"});
  p::AppendDataRow(&out, {row});
  p::AppendCommandComplete(&out, tag);
  if (!sqlstate.empty()) {
    p::AppendErrorResponse(&out, {.sqlstate = sqlstate, .message = message});
  }
  p::AppendReadyForQuery(&out, 'T');
  return out;
}

std::array<uint8_t, 32> DigestOf(std::string_view bytes, size_t chunk) {
  p::ReplyDigest d;
  for (size_t i = 0; i < bytes.size(); i += chunk) d.Feed(bytes.substr(i, chunk));
  return d.Value();
}

}  // namespace

TEST_CASE("ReplyDigest: the same replies in any chunking give the same digest") {
  const std::string r = Replies("42", "SELECT 1", "40001");
  const auto whole = DigestOf(r, r.size());
  for (size_t chunk : {1, 2, 3, 5, 7, 64}) CHECK(DigestOf(r, chunk) == whole);
  p::ReplyDigest d;
  d.Feed(r);
  CHECK(d.digested() == 3);  // the row, the tag, the error
}

TEST_CASE("ReplyDigest: rows, tags and SQLSTATEs count; acknowledgements and texts do not") {
  const auto base = DigestOf(Replies("42", "SELECT 1", "40001"), 4096);
  CHECK(DigestOf(Replies("43", "SELECT 1", "40001"), 4096) != base);
  CHECK(DigestOf(Replies("42", "SELECT 2", "40001"), 4096) != base);
  CHECK(DigestOf(Replies("42", "SELECT 1", "22012"), 4096) != base);
  CHECK(DigestOf(Replies("42", "SELECT 1"), 4096) != base);
  // The error's text may name the node; its SQLSTATE is what counts.
  CHECK(DigestOf(Replies("42", "SELECT 1", "40001", "other words"), 4096) == base);
  std::string with_notice = Replies("42", "SELECT 1", "40001");
  p::AppendNoticeResponse(&with_notice,
                          {.severity = "NOTICE", .sqlstate = "00000", .message = "hello"});
  CHECK(DigestOf(with_notice, 4096) == base);
}

TEST_CASE("ReplyDigest: a row split across many pieces") {
  const std::string big(100000, 'x');
  const std::string r = Replies(big, "SELECT 1");
  CHECK(DigestOf(r, 999) == DigestOf(r, r.size()));
  std::string other = big;
  other[50000] = 'y';
  CHECK(DigestOf(Replies(other, "SELECT 1"), 999) != DigestOf(r, 999));
}
