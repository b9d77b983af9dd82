#include "proxy/admin/http_request.h"

#include <doctest/doctest.h>

#include <random>
#include <string>

namespace pgregion::proxy {
namespace {

constexpr size_t kMax = 8192;

HttpParseResult Parse(std::string_view text) { return ParseHttpRequestHead(text, kMax); }

TEST_CASE("http: a GET with headers") {
  HttpParseResult r = Parse(
      "GET /status?verbose=1 HTTP/1.1\r\nHost: localhost:9187\r\n"
      "Authorization:   Bearer abc  \r\nAccept: */*\r\n\r\n");
  REQUIRE(r.status == HttpParseStatus::kComplete);
  CHECK(r.request.method == "GET");
  CHECK(r.request.path == "/status");
  CHECK(r.request.query == "verbose=1");
  CHECK(r.request.authorization == "Bearer abc");
}

TEST_CASE("http: bare LF line ends and HTTP/1.0") {
  HttpParseResult r = Parse("HEAD /metrics HTTP/1.0\nUser-Agent: x\n\n");
  REQUIRE(r.status == HttpParseStatus::kComplete);
  CHECK(r.request.method == "HEAD");
  CHECK(r.request.path == "/metrics");
  CHECK(r.request.authorization.empty());
}

TEST_CASE("http: incomplete heads need more, at every split") {
  std::string full = "GET /ready HTTP/1.1\r\nHost: a\r\n\r\n";
  for (size_t i = 0; i < full.size(); ++i) {
    CAPTURE(i);
    CHECK(Parse(full.substr(0, i)).status == HttpParseStatus::kNeedMore);
  }
  CHECK(Parse(full).status == HttpParseStatus::kComplete);
  // Bytes after the head (a body, a pipelined request) are not looked at.
  CHECK(Parse(full + "GARBAGE").status == HttpParseStatus::kComplete);
}

TEST_CASE("http: malformed requests are 400") {
  for (std::string_view bad : {
           "\r\n",
           "GET\r\n\r\n",
           "GET /x\r\n\r\n",
           "GET  /x HTTP/1.1\r\n\r\n",
           "GET /x HTTP/1.1 extra\r\n\r\n",
           "GET x HTTP/1.1\r\n\r\n",
           "GET http://host/x HTTP/1.1\r\n\r\n",
           "G(T /x HTTP/1.1\r\n\r\n",
           "GET /x\x01y HTTP/1.1\r\n\r\n",
           "GET /x FTP/1.1\r\n\r\n",
           "GET /x HTTP/1.1\r\nNoColon\r\n\r\n",
           "GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n",
           "GET /x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
           "GET /x HTTP/1.1\r\nA: b\x01\r\n\r\n",
           "GET /x HTTP/1.1\r\nAuthorization: a\r\nauthorization: b\r\n\r\n",
       }) {
    CAPTURE(bad);
    HttpParseResult r = Parse(bad);
    CHECK(r.status == HttpParseStatus::kError);
    CHECK(r.error_status == 400);
    CHECK(!r.error.empty());
  }
}

TEST_CASE("http: other versions are 505") {
  HttpParseResult r = Parse("GET /x HTTP/2.0\r\n\r\n");
  CHECK(r.status == HttpParseStatus::kError);
  CHECK(r.error_status == 505);
}

TEST_CASE("http: a head larger than the limit is 431, complete or not") {
  std::string big = "GET /x HTTP/1.1\r\nX: " + std::string(kMax, 'a');
  HttpParseResult r = Parse(big);
  CHECK(r.status == HttpParseStatus::kError);
  CHECK(r.error_status == 431);
  r = Parse(big + "\r\n\r\n");
  CHECK(r.status == HttpParseStatus::kError);
  CHECK(r.error_status == 431);
  // Exactly at the limit is fine.
  std::string head = "GET /x HTTP/1.1\r\n\r\n";
  CHECK(ParseHttpRequestHead(head, head.size()).status == HttpParseStatus::kComplete);
  CHECK(ParseHttpRequestHead(head, head.size() - 1).error_status == 431);
}

TEST_CASE("http: random bytes never crash and end in a bounded answer") {
  std::mt19937 rng(42);
  for (int round = 0; round < 2000; ++round) {
    std::string s;
    size_t n = rng() % 64;
    for (size_t i = 0; i < n; ++i) {
      // Mostly printable, with line ends, so some inputs get deep into the parser.
      uint32_t k = rng() % 20;
      s.push_back(k == 0 ? '\n' : k == 1 ? '\r' : k == 2 ? ' ' : static_cast<char>(rng() % 256));
    }
    if (round % 2 == 0) s = "GET /" + s + "\r\n\r\n";
    HttpParseResult r = ParseHttpRequestHead(s, 48);
    if (r.status == HttpParseStatus::kError) {
      CHECK((r.error_status == 400 || r.error_status == 431 || r.error_status == 505));
    }
  }
}

TEST_CASE("http: responses") {
  HttpResponse r{.status = 200, .content_type = "application/json", .body = "{}"};
  r.headers.emplace_back("X-A", "b");
  CHECK(SerializeHttpResponse(r, false) ==
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        "Connection: close\r\nCache-Control: no-store\r\nX-A: b\r\n\r\n{}");
  // HEAD: the same head (Content-Length of the body it would get), no body.
  CHECK(SerializeHttpResponse(r, true) ==
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        "Connection: close\r\nCache-Control: no-store\r\nX-A: b\r\n\r\n");
  HttpResponse e = TextResponse(503, "no primary");
  CHECK(e.status == 503);
  CHECK(e.body == "Service Unavailable: no primary\n");
  CHECK(TextResponse(404, "").body == "Not Found\n");
}

TEST_CASE("http: bearer tokens") {
  CHECK(BearerTokenMatches("Bearer s3cret", "s3cret"));
  CHECK(BearerTokenMatches("bearer s3cret", "s3cret"));
  CHECK(BearerTokenMatches("BEARER  s3cret ", "s3cret"));
  CHECK_FALSE(BearerTokenMatches("Bearer s3cre", "s3cret"));
  CHECK_FALSE(BearerTokenMatches("Bearer s3cretx", "s3cret"));
  CHECK_FALSE(BearerTokenMatches("Bearer S3cret", "s3cret"));
  CHECK_FALSE(BearerTokenMatches("Basic s3cret", "s3cret"));
  CHECK_FALSE(BearerTokenMatches("s3cret", "s3cret"));
  CHECK_FALSE(BearerTokenMatches("", "s3cret"));
  CHECK_FALSE(BearerTokenMatches("Bearer ", ""));  // no token configured: nothing matches
}

}  // namespace
}  // namespace pgregion::proxy
