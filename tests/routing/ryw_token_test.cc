#include "routing/ryw_token.h"

#include <doctest/doctest.h>

namespace pgregion::routing {
namespace {

TEST_CASE("RywToken: round trip and text form") {
  RywToken t{7301234567890123456ull, 3, Lsn(0x16B374D848ull)};
  CHECK(t.ToString() == "r1.7301234567890123456.3.00000016B374D848");
  auto back = RywToken::Parse(t.ToString());
  REQUIRE(back.ok());
  CHECK(back->system_identifier == t.system_identifier);
  CHECK(back->timeline == 3);
  CHECK(back->lsn == t.lsn);
  CHECK(RywToken{}.ToString().empty());
  CHECK(RywToken::Parse("r1.1.1.00000000000000ff")->lsn.value() == 0xff);
}

TEST_CASE("RywToken: garbled tokens are errors") {
  for (std::string_view bad :
       {"", "r1", "r1.1.1", "r2.1.1.0000000000000001", "r1.x.1.0000000000000001",
        "r1.1.x.0000000000000001", "r1.1.1.1", "r1.1.1.000000000000000g", "r1.0.1.0000000000000001",
        "r1.1.0.0000000000000001", "r1.1.1.0000000000000000", "r1.1.1.0000000000000001.",
        "r1.1.1.0000000000000001.5", "r1.-1.1.0000000000000001", "r1.1.1.+000000000000001",
        "r1.99999999999999999999999.1.0000000000000001"}) {
    CAPTURE(bad);
    CHECK_FALSE(RywToken::Parse(bad).ok());
  }
}

TEST_CASE("RywToken: Max keeps the later position") {
  RywToken a{9, 1, Lsn(100)};
  RywToken b{9, 2, Lsn(90)};
  RywToken m = RywToken::Max(a, b);
  CHECK(m.timeline == 2);
  CHECK(m.lsn == Lsn(100));
  CHECK(RywToken::Max(RywToken{}, b).lsn == Lsn(90));
  CHECK(RywToken::Max(a, RywToken{}).lsn == Lsn(100));
}

TEST_CASE("TokenLsnAfterCommit: the flush position only after a synchronous commit") {
  const Lsn flush(0x3000040);
  const Lsn insert(0x3000a00);  // other sessions' WAL, not flushed yet
  // Every setting that flushes the commit before acknowledging it.
  for (std::string_view sync : {"on", "local", "remote_write", "remote_apply"}) {
    CAPTURE(sync);
    const TokenLsn t = TokenLsnAfterCommit(sync, false, flush, insert);
    CHECK(t.lsn == flush);
    CHECK(t.flush);
  }
  // off: the commit may not be flushed (nor streamed) yet; the insert
  // position is past its commit record.
  CHECK(TokenLsnAfterCommit("off", false, flush, insert).lsn == insert);
  CHECK_FALSE(TokenLsnAfterCommit("off", false, flush, insert).flush);
  // The transaction may have lowered the setting for itself (SET LOCAL, user code).
  CHECK(TokenLsnAfterCommit("on", true, flush, insert).lsn == insert);
  // Answers missing or not understood: never the flush position.
  for (std::string_view sync : {"", "ON", "true", "1", "yes", "on ", "remote"}) {
    CAPTURE(sync);
    CHECK(TokenLsnAfterCommit(sync, false, flush, insert).lsn == insert);
  }
  CHECK(TokenLsnAfterCommit("on", false, Lsn(), insert).lsn == insert);
  // An impossible order (flush read first, so never past insert): the insert position.
  CHECK(TokenLsnAfterCommit("on", false, Lsn(0x4000000), insert).lsn == insert);
  // No insert position: no token at all (the session's reads stay on the primary).
  CHECK_FALSE(TokenLsnAfterCommit("on", false, flush, Lsn()).lsn.valid());
  CHECK_FALSE(TokenLsnAfterCommit("off", false, flush, Lsn()).lsn.valid());
  // Nothing else was written: both positions agree.
  CHECK(TokenLsnAfterCommit("on", false, insert, insert).lsn == insert);
}

}  // namespace
}  // namespace pgregion::routing
