// Fuzz target: proxy::ParseHttpRequestHead (admin HTTP endpoint).
//
// Property: the admin server re-parses everything received so far after each
// read; the first answer that is not kNeedMore must not depend on how the
// bytes were split into reads, so it is compared with parsing the whole input
// at once. Also: kNeedMore never happens past max_head_bytes; a parsed request
// serializes a response without crashing; BearerTokenMatches agrees with a
// plain comparison.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "proxy/admin/http_request.h"

namespace {

using pgregion::fuzz::Check;
using pgregion::proxy::HttpParseResult;
using pgregion::proxy::HttpParseStatus;
using pgregion::proxy::ParseHttpRequestHead;

bool Same(const HttpParseResult& a, const HttpParseResult& b) {
  return a.status == b.status && a.error_status == b.error_status &&
         a.request.method == b.request.method && a.request.path == b.request.path &&
         a.request.query == b.request.query && a.request.authorization == b.request.authorization;
}

bool ReferenceBearer(std::string_view auth, std::string_view token) {
  if (token.empty() || auth.size() < 7) return false;
  std::string scheme(auth.substr(0, 7));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string_view presented = auth.substr(7);
  // Optional whitespace around the credentials (RFC 9110 OWS).
  while (!presented.empty() && (presented.front() == ' ' || presented.front() == '\t')) presented.remove_prefix(1);
  while (!presented.empty() && (presented.back() == ' ' || presented.back() == '\t')) presented.remove_suffix(1);
  return scheme == "bearer " && presented == token;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  const size_t max_head = fdp.ConsumeIntegralInRange<size_t>(16, 2048);
  std::vector<size_t> chunks;
  const int n_chunks = fdp.ConsumeIntegralInRange<int>(0, 16);
  for (int i = 0; i < n_chunks; ++i) chunks.push_back(fdp.ConsumeIntegralInRange<size_t>(1, 64));
  const std::string token = fdp.ConsumeRandomLengthString(16);
  const std::string input = fdp.ConsumeRemainingBytesAsString();

  const HttpParseResult whole = ParseHttpRequestHead(input, max_head);
  if (whole.status == HttpParseStatus::kNeedMore) {
    Check(input.size() <= max_head, "kNeedMore past max_head_bytes");
  }

  // Reads as the server sees them: growing prefixes.
  HttpParseResult incremental;
  size_t pos = 0;
  size_t chunk = 0;
  while (pos < input.size()) {
    size_t n = chunk < chunks.size() ? chunks[chunk++] : input.size() - pos;
    pos += std::min(n, input.size() - pos);
    incremental = ParseHttpRequestHead(std::string_view(input).substr(0, pos), max_head);
    if (incremental.status != HttpParseStatus::kNeedMore) break;
  }
  if (!input.empty()) Check(Same(whole, incremental), "chunked parse differs from whole parse");

  if (whole.status == HttpParseStatus::kComplete) {
    pgregion::proxy::HttpResponse response = pgregion::proxy::TextResponse(200, whole.request.path);
    const std::string wire = pgregion::proxy::SerializeHttpResponse(response, whole.request.method == "HEAD");
    Check(wire.rfind("HTTP/1.", 0) == 0, "response does not start with a status line");
    Check(pgregion::proxy::BearerTokenMatches(whole.request.authorization, token) ==
              ReferenceBearer(whole.request.authorization, token),
          "BearerTokenMatches disagrees with a plain comparison");
  }
  if (whole.status == HttpParseStatus::kError) {
    Check(whole.error_status == 400 || whole.error_status == 431 || whole.error_status == 505 ||
              whole.error_status >= 400,
          "error without a 4xx/5xx status");
  }
  return 0;
}
