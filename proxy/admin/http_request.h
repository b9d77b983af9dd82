// The small part of HTTP/1.x the admin endpoint speaks: parsing a request head
// and writing a response. Every response closes the connection, so there is no
// keep-alive, no pipelining and no request body (the endpoints are GET/HEAD
// only; a body that arrives anyway is never read). Pure: no I/O, any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgregion::proxy {

struct HttpRequest {
  std::string method;         // as sent, e.g. "GET"
  std::string path;           // the target up to '?', not percent-decoded
  std::string query;          // after '?', possibly empty
  std::string authorization;  // the Authorization header's value; empty if absent
};

enum class HttpParseStatus { kNeedMore, kComplete, kError };

struct HttpParseResult {
  HttpParseStatus status = HttpParseStatus::kNeedMore;
  HttpRequest request;   // kComplete only
  int error_status = 0;  // kError: 400, 431 (head too large) or 505
  std::string error;
};

// `data` is everything received so far on the connection. The head ends at an
// empty line (CRLF CRLF; bare LF line ends are accepted too). A head that has
// not ended within `max_head_bytes` is an error (431).
HttpParseResult ParseHttpRequestHead(std::string_view data, size_t max_head_bytes);

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// Status line, Content-Type, Content-Length, Connection: close, Cache-Control:
// no-store, the extra headers, then the body (left out when `head_only`).
std::string SerializeHttpResponse(const HttpResponse& response, bool head_only);
std::string_view HttpStatusText(int status);
// A plain-text response "<status text>: <detail>\n".
HttpResponse TextResponse(int status, std::string_view detail);

// True when `authorization` is "Bearer <token>" (scheme case-insensitive) with
// exactly `token`; compared in time independent of where they differ.
bool BearerTokenMatches(std::string_view authorization, std::string_view token);

}  // namespace pgregion::proxy
