#include "routing/lsn.h"

#include <doctest/doctest.h>

#include <string>

namespace pgregion::routing {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

Lsn L(std::string_view text) {
  auto lsn = Lsn::Parse(text);
  REQUIRE(lsn.ok());
  return *lsn;
}

TEST_CASE("Lsn: parses and formats PostgreSQL's X/Y form") {
  CHECK(L("0/0").value() == 0);
  CHECK(L("16/B374D848").value() == 0x16B374D848ull);
  CHECK(L("16/b374d848").value() == 0x16B374D848ull);
  CHECK(L("FFFFFFFF/FFFFFFFF").value() == UINT64_MAX);
  CHECK(L("00000001/00000010").value() == 0x100000010ull);

  CHECK(Lsn(0x16B374D848ull).ToString() == "16/B374D848");
  CHECK(Lsn(0).ToString() == "0/0");
  CHECK(Lsn(UINT64_MAX).ToString() == "FFFFFFFF/FFFFFFFF");
  CHECK(Lsn(0x100000000ull).ToString() == "1/0");
  for (uint64_t v : {uint64_t{1}, uint64_t{0x2000028}, uint64_t{0xABCDEF0123456789}}) {
    CHECK(L(Lsn(v).ToString()).value() == v);
  }
}

TEST_CASE("Lsn: rejects malformed text") {
  for (const char* bad : {"", "/", "0/", "/0", "0", "0//0", "0/0/0", "G/0", "0/0 ", " 0/0", "+1/0",
                          "-1/0", "0x1/0", "123456789/0", "0/123456789", "1/2\n"}) {
    INFO(bad);
    auto lsn = Lsn::Parse(bad);
    CHECK_FALSE(lsn.ok());
  }
}

TEST_CASE("Lsn: ordering and distance") {
  CHECK(Lsn(1) < Lsn(2));
  CHECK(Lsn(2) == Lsn(2));
  CHECK_FALSE(Lsn().valid());
  CHECK(Lsn(1).valid());
  CHECK(Lsn::BytesBetween(Lsn(100), Lsn(350)) == 250);
  CHECK(Lsn::BytesBetween(Lsn(350), Lsn(100)) == 0);
}

TEST_CASE("Lsn: ReplayCovers plain comparison") {
  CHECK(ReplayCovers(Lsn(0x3000100), Lsn(0x3000100)));
  CHECK(ReplayCovers(Lsn(0x3000200), Lsn(0x3000100)));
  CHECK_FALSE(ReplayCovers(Lsn(0x30000FF), Lsn(0x3000100)));
  CHECK(ReplayCovers(Lsn(5), Lsn()));  // no token
}

TEST_CASE("Lsn: ReplayCovers at a page boundary inside a segment") {
  const uint64_t page = 0x3000000 + 5 * 8192;  // not the first page of the segment
  const Lsn token(page + kWalShortPageHeaderSize);
  CHECK(ReplayCovers(Lsn(page), token));       // idle replica stopped at the boundary
  CHECK(ReplayCovers(Lsn(page + 10), token));  // anywhere inside the header too
  CHECK_FALSE(ReplayCovers(Lsn(page - 1), token));
  // Any other offset on the page: plain comparison only.
  CHECK_FALSE(ReplayCovers(Lsn(page), Lsn(page + kWalShortPageHeaderSize + 8)));
  CHECK_FALSE(ReplayCovers(Lsn(page), Lsn(page + kWalShortPageHeaderSize - 8)));
  // 40 is the long header size, but only the first page of a segment has one.
  CHECK_FALSE(ReplayCovers(Lsn(page), Lsn(page + kWalLongPageHeaderSize)));
}

TEST_CASE("Lsn: ReplayCovers at a segment start (long page header)") {
  const uint64_t seg = 7 * 16 * kMiB;
  const Lsn token(seg + kWalLongPageHeaderSize);
  CHECK(ReplayCovers(Lsn(seg), token));
  CHECK_FALSE(ReplayCovers(Lsn(seg - 1), token));
  // 24 on a segment's first page is inside the long header: never a record end.
  CHECK_FALSE(ReplayCovers(Lsn(seg), Lsn(seg + kWalShortPageHeaderSize)));
}

TEST_CASE("Lsn: ReplayCovers with another segment size and page size") {
  const uint64_t seg_size = 64 * kMiB;
  // 16 MiB into a 64 MiB segment is an ordinary page: short header.
  const uint64_t p16 = 3 * seg_size + 16 * kMiB;
  CHECK(ReplayCovers(Lsn(p16), Lsn(p16 + 24), seg_size));
  CHECK_FALSE(ReplayCovers(Lsn(p16), Lsn(p16 + 40), seg_size));
  // With the default 16 MiB segments the same position starts a segment.
  CHECK(ReplayCovers(Lsn(p16), Lsn(p16 + 40)));
  CHECK_FALSE(ReplayCovers(Lsn(p16), Lsn(p16 + 24)));
  // A 64 MiB segment start.
  CHECK(ReplayCovers(Lsn(3 * seg_size), Lsn(3 * seg_size + 40), seg_size));
  // 16 kB pages: 8192 is mid-page.
  CHECK_FALSE(ReplayCovers(Lsn(0x3000000 + 8192), Lsn(0x3000000 + 8192 + 24), 16 * kMiB, 16384));
  CHECK(ReplayCovers(Lsn(0x3000000 + 16384), Lsn(0x3000000 + 16384 + 24), 16 * kMiB, 16384));
  // Nonsense sizes fall back to the defaults.
  CHECK(ReplayCovers(Lsn(p16), Lsn(p16 + 40), 12345, 1000));
}

}  // namespace
}  // namespace pgregion::routing
