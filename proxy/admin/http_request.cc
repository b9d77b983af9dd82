#include "proxy/admin/http_request.h"

#include "protocol/str_util.h"

namespace pgregion::proxy {

namespace {

// RFC 9110 token characters (method and header names).
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

// Visible ASCII, no spaces: what a request target may hold.
bool IsTargetChar(char c) { return c > 0x20 && c < 0x7f; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

HttpParseResult Error(int status, std::string_view why) {
  HttpParseResult r;
  r.status = HttpParseStatus::kError;
  r.error_status = status;
  r.error = std::string(why);
  return r;
}

// The offset just past the empty line that ends the head, or npos.
size_t HeadEnd(std::string_view data) {
  size_t pos = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos) return std::string_view::npos;
    std::string_view line = data.substr(pos, nl - pos);
    if (line.empty() || line == "\r") return nl + 1;
    pos = nl + 1;
  }
  return std::string_view::npos;
}

}  // namespace

HttpParseResult ParseHttpRequestHead(std::string_view data, size_t max_head_bytes) {
  size_t end = HeadEnd(data);
  if (end == std::string_view::npos || end > max_head_bytes) {
    if (data.size() > max_head_bytes || end != std::string_view::npos) {
      return Error(431, "request head too large");
    }
    return HttpParseResult{};
  }
  std::string_view head = data.substr(0, end);
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    head.remove_prefix(nl + 1);
  }
  // lines.back() is the empty line that ended the head.
  if (lines.size() < 2) return Error(400, "empty request");
  std::string_view request_line = lines[0];
  size_t sp1 = request_line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || request_line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Error(400, "malformed request line");
  }
  std::string_view method = request_line.substr(0, sp1);
  std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = request_line.substr(sp2 + 1);
  if (!IsToken(method)) return Error(400, "malformed method");
  if (target.empty() || target.front() != '/') return Error(400, "request target must be a path");
  for (char c : target) {
    if (!IsTargetChar(c)) return Error(400, "invalid character in request target");
  }
  if (!StartsWith(version, "HTTP/")) return Error(400, "malformed HTTP version");
  if (version != "HTTP/1.1" && version != "HTTP/1.0")
    return Error(505, "HTTP version not supported");

  HttpParseResult r;
  r.status = HttpParseStatus::kComplete;
  r.request.method = std::string(method);
  size_t q = target.find('?');
  r.request.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) r.request.query = std::string(target.substr(q + 1));
  bool seen_authorization = false;
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (line.front() == ' ' || line.front() == '\t') return Error(400, "obsolete line folding");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) {
      return Error(400, "malformed header field");
    }
    std::string_view name = line.substr(0, colon);
    std::string_view value = TrimOws(line.substr(colon + 1));
    for (char c : value) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
        return Error(400, "invalid character in header field");
      }
    }
    if (EqualsIgnoreCase(name, "authorization")) {
      if (seen_authorization) return Error(400, "more than one Authorization header");
      seen_authorization = true;
      r.request.authorization = std::string(value);
    }
  }
  return r;
}

std::string_view HttpStatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

HttpResponse TextResponse(int status, std::string_view detail) {
  HttpResponse r;
  r.status = status;
  r.body = detail.empty() ? StrCat(HttpStatusText(status), "\n")
                          : StrCat(HttpStatusText(status), ": ", detail, "\n");
  return r;
}

std::string SerializeHttpResponse(const HttpResponse& response, bool head_only) {
  std::string out = StrCat("HTTP/1.1 ", response.status, " ", HttpStatusText(response.status),
                           "\r\nContent-Type: ", response.content_type,
                           "\r\nContent-Length: ", response.body.size(),
                           "\r\nConnection: close\r\nCache-Control: no-store\r\n");
  for (const auto& [name, value] : response.headers) StrAppend(&out, name, ": ", value, "\r\n");
  out.append("\r\n");
  if (!head_only) out.append(response.body);
  return out;
}

bool BearerTokenMatches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view kScheme = "bearer ";
  if (token.empty() || authorization.size() < kScheme.size() ||
      !EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme)) {
    return false;
  }
  std::string_view presented = TrimOws(authorization.substr(kScheme.size()));
  // Every byte of the configured token is looked at whatever the input, so the
  // time taken does not tell how much of a guess was right.
  unsigned diff = presented.size() == token.size() ? 0u : 1u;
  for (size_t i = 0; i < token.size(); ++i) {
    char p = i < presented.size() ? presented[i] : '\0';
    diff |= static_cast<unsigned>(static_cast<unsigned char>(p ^ token[i]));
  }
  return diff == 0;
}

}  // namespace pgregion::proxy
