#include "protocol/messages.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"

namespace pgregion::protocol {
namespace {

// Bounds-checked cursor over a message body. Every read fails (returns nullopt /
// false) instead of reading past the end, so parsers only have to propagate.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  std::optional<char> Byte() {
    if (data_.empty()) return std::nullopt;
    const char c = data_[0];
    data_.remove_prefix(1);
    return c;
  }

  std::optional<uint16_t> Int16() {
    if (data_.size() < 2) return std::nullopt;
    const uint16_t v = static_cast<uint16_t>((U(0) << 8) | U(1));
    data_.remove_prefix(2);
    return v;
  }

  std::optional<uint32_t> Int32() {
    if (data_.size() < 4) return std::nullopt;
    const uint32_t v = (U(0) << 24) | (U(1) << 16) | (U(2) << 8) | U(3);
    data_.remove_prefix(4);
    return v;
  }

  // The text up to the next NUL; the NUL is consumed, not returned.
  std::optional<std::string_view> CString() {
    const size_t nul = data_.find('\0');
    if (nul == std::string_view::npos) return std::nullopt;
    std::string_view s = data_.substr(0, nul);
    data_.remove_prefix(nul + 1);
    return s;
  }

  std::optional<std::string_view> Bytes(size_t n) {
    if (data_.size() < n) return std::nullopt;
    std::string_view s = data_.substr(0, n);
    data_.remove_prefix(n);
    return s;
  }

  std::string_view Rest() {
    std::string_view s = data_;
    data_ = {};
    return s;
  }

  bool AtEnd() const { return data_.empty(); }
  size_t remaining() const { return data_.size(); }

 private:
  uint32_t U(size_t i) const { return static_cast<unsigned char>(data_[i]); }

  std::string_view data_;
};

absl::Status Truncated(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrFormat("truncated %s message", what));
}

absl::Status Trailing(std::string_view what, size_t n) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%d unexpected trailing bytes in %s message", n, what));
}

// A length-prefixed value (int32 length, -1 = NULL, then that many bytes).
absl::StatusOr<DataRowColumn> ReadValue(Reader& r, std::string_view what) {
  const std::optional<uint32_t> len = r.Int32();
  if (!len) return Truncated(what);
  DataRowColumn col;
  if (*len == 0xFFFFFFFFu) {
    col.is_null = true;
    return col;
  }
  if (*len > 0x7FFFFFFFu) {
    return absl::InvalidArgumentError(absl::StrFormat("negative value length %d in %s message",
                                                      static_cast<int32_t>(*len), what));
  }
  const std::optional<std::string_view> value = r.Bytes(*len);
  if (!value) return Truncated(what);
  col.value = *value;
  return col;
}

// Messages that are just one C string.
absl::StatusOr<std::string_view> ParseSingleCString(std::string_view body, std::string_view what) {
  Reader r(body);
  const std::optional<std::string_view> s = r.CString();
  if (!s) return Truncated(what);
  if (!r.AtEnd()) return Trailing(what, r.remaining());
  return *s;
}

absl::StatusOr<StartupMessage> ParseStartupParams(Reader& r, uint32_t code) {
  StartupMessage m;
  m.major = static_cast<uint16_t>(code >> 16);
  m.minor = static_cast<uint16_t>(code & 0xFFFF);
  if (m.major != 3) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unsupported frontend protocol %u.%u: only 3.x is supported", m.major, m.minor));
  }
  for (;;) {
    const std::optional<std::string_view> name = r.CString();
    if (!name) return absl::InvalidArgumentError("startup packet lacks the final terminator");
    if (name->empty()) break;
    const std::optional<std::string_view> value = r.CString();
    if (!value) {
      return absl::InvalidArgumentError(
          absl::StrFormat("startup packet parameter \"%s\" has no value", *name));
    }
    const bool duplicate = std::any_of(m.params.begin(), m.params.end(),
                                       [&](const auto& p) { return p.first == *name; });
    if (duplicate) {
      return absl::InvalidArgumentError(
          absl::StrFormat("duplicate startup packet parameter \"%s\"", *name));
    }
    m.params.emplace_back(*name, *value);
  }
  // PostgreSQL insists the terminator is the last byte; so do we.
  if (!r.AtEnd()) return Trailing("startup", r.remaining());
  return m;
}

}  // namespace

absl::StatusOr<StartupPacket> ParseStartupPacket(std::string_view body) {
  Reader r(body);
  const std::optional<uint32_t> code = r.Int32();
  if (!code) return Truncated("startup");
  StartupPacket p;
  switch (*code) {
    case kSslRequestCode:
    case kGssEncRequestCode:
      if (!r.AtEnd()) return Trailing("encryption request", r.remaining());
      p.kind = *code == kSslRequestCode ? StartupPacketKind::kSslRequest
                                        : StartupPacketKind::kGssEncRequest;
      return p;
    case kCancelRequestCode: {
      const std::optional<uint32_t> pid = r.Int32();
      const std::optional<uint32_t> secret = r.Int32();
      if (!pid || !secret) return Truncated("CancelRequest");
      // Longer (protocol 3.2) keys are never handed out by us: clients negotiate 3.0.
      if (!r.AtEnd()) return Trailing("CancelRequest", r.remaining());
      p.kind = StartupPacketKind::kCancel;
      p.cancel = CancelRequest{*pid, *secret};
      return p;
    }
    default:
      break;
  }
  absl::StatusOr<StartupMessage> m = ParseStartupParams(r, *code);
  if (!m.ok()) return m.status();
  p.kind = StartupPacketKind::kStartup;
  p.startup = *std::move(m);
  return p;
}

std::string_view ErrorNotice::Get(char code) const {
  for (const ErrorField& f : fields) {
    if (f.code == code) return f.value;
  }
  return {};
}

absl::StatusOr<ErrorNotice> ParseErrorNotice(std::string_view body) {
  Reader r(body);
  ErrorNotice n;
  for (;;) {
    const std::optional<char> code = r.Byte();
    if (!code) return Truncated("ErrorResponse/NoticeResponse");
    if (*code == '\0') break;
    const std::optional<std::string_view> value = r.CString();
    if (!value) return Truncated("ErrorResponse/NoticeResponse");
    n.fields.push_back(ErrorField{*code, *value});
  }
  if (!r.AtEnd()) return Trailing("ErrorResponse/NoticeResponse", r.remaining());
  return n;
}

absl::StatusOr<ParameterStatus> ParseParameterStatus(std::string_view body) {
  Reader r(body);
  const std::optional<std::string_view> name = r.CString();
  const std::optional<std::string_view> value = name ? r.CString() : std::nullopt;
  if (!value) return Truncated("ParameterStatus");
  if (!r.AtEnd()) return Trailing("ParameterStatus", r.remaining());
  return ParameterStatus{*name, *value};
}

absl::StatusOr<BackendKeyData> ParseBackendKeyData(std::string_view body) {
  Reader r(body);
  const std::optional<uint32_t> pid = r.Int32();
  const std::optional<uint32_t> secret = r.Int32();
  if (!pid || !secret) return Truncated("BackendKeyData");
  // Longer keys exist only in protocol 3.2, which we do not request from servers.
  if (!r.AtEnd()) return Trailing("BackendKeyData", r.remaining());
  return BackendKeyData{*pid, *secret};
}

absl::StatusOr<char> ParseReadyForQuery(std::string_view body) {
  if (body.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ReadyForQuery body has %d bytes, expected 1", body.size()));
  }
  const char status = body[0];
  if (status != 'I' && status != 'T' && status != 'E') {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid ReadyForQuery status 0x%02x", static_cast<unsigned char>(status)));
  }
  return status;
}

absl::StatusOr<Authentication> ParseAuthentication(std::string_view body) {
  Reader r(body);
  const std::optional<uint32_t> code = r.Int32();
  if (!code) return Truncated("Authentication");
  Authentication a;
  a.code = *code;
  a.data = r.Rest();
  switch (static_cast<AuthCode>(*code)) {
    case AuthCode::kMd5Password:
      if (a.data.size() != 4) {
        return absl::InvalidArgumentError(
            absl::StrFormat("AuthenticationMD5Password salt has %d bytes", a.data.size()));
      }
      break;
    case AuthCode::kSasl: {
      Reader m(a.data);
      for (;;) {
        const std::optional<std::string_view> name = m.CString();
        if (!name) return Truncated("AuthenticationSASL");
        if (name->empty()) break;
        a.mechanisms.push_back(*name);
      }
      if (!m.AtEnd()) return Trailing("AuthenticationSASL", m.remaining());
      break;
    }
    case AuthCode::kOk:
    case AuthCode::kCleartextPassword:
    case AuthCode::kSaslContinue:
    case AuthCode::kSaslFinal:
      break;
  }
  return a;
}

absl::StatusOr<SaslInitialResponse> ParseSaslInitialResponse(std::string_view body) {
  Reader r(body);
  const std::optional<std::string_view> mechanism = r.CString();
  if (!mechanism) return Truncated("SASLInitialResponse");
  absl::StatusOr<DataRowColumn> data = ReadValue(r, "SASLInitialResponse");
  if (!data.ok()) return data.status();
  if (!r.AtEnd()) return Trailing("SASLInitialResponse", r.remaining());
  return SaslInitialResponse{*mechanism, data->value};
}

absl::StatusOr<std::string_view> ParsePasswordMessage(std::string_view body) {
  return ParseSingleCString(body, "PasswordMessage");
}

absl::StatusOr<Query> ParseQuery(std::string_view body) {
  absl::StatusOr<std::string_view> text = ParseSingleCString(body, "Query");
  if (!text.ok()) return text.status();
  return Query{*text};
}

absl::StatusOr<Parse> ParseParse(std::string_view body) {
  Reader r(body);
  Parse p;
  const std::optional<std::string_view> name = r.CString();
  const std::optional<std::string_view> query = name ? r.CString() : std::nullopt;
  const std::optional<uint16_t> count = query ? r.Int16() : std::nullopt;
  if (!count) return Truncated("Parse");
  p.name = *name;
  p.query = *query;
  // Bounded by the bytes present, so a bogus count cannot make us allocate much.
  if (static_cast<size_t>(*count) * 4 > r.remaining()) return Truncated("Parse");
  p.param_types.reserve(*count);
  for (uint16_t i = 0; i < *count; ++i) p.param_types.push_back(*r.Int32());
  if (!r.AtEnd()) return Trailing("Parse", r.remaining());
  return p;
}

absl::StatusOr<Bind> ParseBind(std::string_view body) {
  Reader r(body);
  const std::optional<std::string_view> portal = r.CString();
  const std::optional<std::string_view> statement = portal ? r.CString() : std::nullopt;
  if (!statement) return Truncated("Bind");
  return Bind{*portal, *statement, r.Rest()};
}

absl::StatusOr<BindParameter> ParseBindParameter(std::string_view rest, size_t index) {
  Reader r(rest);
  const std::optional<uint16_t> nformats = r.Int16();
  if (!nformats) return Truncated("Bind");
  uint16_t format = 0;
  for (uint16_t i = 0; i < *nformats; ++i) {
    const std::optional<uint16_t> f = r.Int16();
    if (!f) return Truncated("Bind");
    if (i == index || (*nformats == 1 && i == 0)) format = *f;
  }
  const std::optional<uint16_t> nparams = r.Int16();
  if (!nparams) return Truncated("Bind");
  if (index >= *nparams) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Bind has %d parameters, not %d", *nparams, index + 1));
  }
  if (*nformats > 1 && *nformats != *nparams) {
    return absl::InvalidArgumentError("Bind format codes do not match its parameters");
  }
  for (size_t i = 0;; ++i) {
    const std::optional<uint32_t> len = r.Int32();
    if (!len) return Truncated("Bind");
    std::optional<std::string_view> value;
    if (*len != 0xFFFFFFFFu) {  // -1: NULL
      value = r.Bytes(*len);
      if (!value) return Truncated("Bind");
    }
    if (i == index) return BindParameter{value, format};
  }
}

absl::StatusOr<CloseDescribe> ParseCloseDescribe(std::string_view body) {
  Reader r(body);
  const std::optional<char> target = r.Byte();
  if (!target) return Truncated("Close/Describe");
  if (*target != 'S' && *target != 'P') {
    return absl::InvalidArgumentError(absl::StrFormat("invalid Close/Describe target 0x%02x",
                                                      static_cast<unsigned char>(*target)));
  }
  const std::optional<std::string_view> name = r.CString();
  if (!name) return Truncated("Close/Describe");
  if (!r.AtEnd()) return Trailing("Close/Describe", r.remaining());
  return CloseDescribe{*target, *name};
}

absl::StatusOr<Execute> ParseExecute(std::string_view body) {
  Reader r(body);
  const std::optional<std::string_view> portal = r.CString();
  const std::optional<uint32_t> max_rows = portal ? r.Int32() : std::nullopt;
  if (!max_rows) return Truncated("Execute");
  if (!r.AtEnd()) return Trailing("Execute", r.remaining());
  return Execute{*portal, *max_rows};
}

absl::StatusOr<std::string_view> ParseCommandComplete(std::string_view body) {
  return ParseSingleCString(body, "CommandComplete");
}

absl::StatusOr<std::vector<DataRowColumn>> ParseDataRow(std::string_view body) {
  Reader r(body);
  const std::optional<uint16_t> count = r.Int16();
  if (!count) return Truncated("DataRow");
  std::vector<DataRowColumn> cols;
  // Each column takes at least its 4-byte length, which bounds the allocation.
  cols.reserve(std::min<size_t>(*count, r.remaining() / 4));
  for (uint16_t i = 0; i < *count; ++i) {
    absl::StatusOr<DataRowColumn> col = ReadValue(r, "DataRow");
    if (!col.ok()) return col.status();
    cols.push_back(*col);
  }
  if (!r.AtEnd()) return Trailing("DataRow", r.remaining());
  return cols;
}

absl::StatusOr<DataRowColumn> ParseFunctionCallResponse(std::string_view body) {
  Reader r(body);
  absl::StatusOr<DataRowColumn> col = ReadValue(r, "FunctionCallResponse");
  if (!col.ok()) return col.status();
  if (!r.AtEnd()) return Trailing("FunctionCallResponse", r.remaining());
  return col;
}

absl::StatusOr<NotificationResponse> ParseNotificationResponse(std::string_view body) {
  Reader r(body);
  const std::optional<uint32_t> pid = r.Int32();
  const std::optional<std::string_view> channel = pid ? r.CString() : std::nullopt;
  const std::optional<std::string_view> payload = channel ? r.CString() : std::nullopt;
  if (!payload) return Truncated("NotificationResponse");
  if (!r.AtEnd()) return Trailing("NotificationResponse", r.remaining());
  return NotificationResponse{*pid, *channel, *payload};
}

}  // namespace pgregion::protocol
