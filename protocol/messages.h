// Typed views of the wire messages the proxy looks at, and parsers for them.
//
// Parsers take a message body (Frame::body) and return views into it: the
// result lives only as long as the caller's buffer. Names follow the
// PostgreSQL protocol documentation ("Message Formats"). Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace pgregion::protocol {

// Startup-phase request codes (the int32 after the length).
inline constexpr uint32_t kSslRequestCode = 80877103;
inline constexpr uint32_t kGssEncRequestCode = 80877104;
inline constexpr uint32_t kCancelRequestCode = 80877102;
inline constexpr uint32_t kProtocolV3 = 196608;  // 3 << 16

struct StartupMessage {
  uint16_t major = 3;
  uint16_t minor = 0;
  // In the order the client sent them; includes "user", "database", "options",
  // and protocol options starting with "_pq_.".
  std::vector<std::pair<std::string_view, std::string_view>> params;
};

struct CancelRequest {
  uint32_t pid = 0;
  uint32_t secret = 0;
};

enum class StartupPacketKind { kStartup, kSslRequest, kGssEncRequest, kCancel };

struct StartupPacket {
  StartupPacketKind kind = StartupPacketKind::kStartup;
  StartupMessage startup;  // kind == kStartup
  CancelRequest cancel;    // kind == kCancel
};

// Body of an untagged startup packet (after the length). Rejects protocol major
// versions other than 3 and malformed parameter lists; accepts any 3.x minor.
[[nodiscard]] absl::StatusOr<StartupPacket> ParseStartupPacket(std::string_view body);

struct ErrorField {
  char code;
  std::string_view value;
};
// ErrorResponse ('E') and NoticeResponse ('N').
struct ErrorNotice {
  std::vector<ErrorField> fields;
  std::string_view Get(char code) const;  // empty if absent
  std::string_view severity() const { return Get('V').empty() ? Get('S') : Get('V'); }
  std::string_view sqlstate() const { return Get('C'); }
  std::string_view message() const { return Get('M'); }
};
[[nodiscard]] absl::StatusOr<ErrorNotice> ParseErrorNotice(std::string_view body);

struct ParameterStatus {
  std::string_view name;
  std::string_view value;
};
[[nodiscard]] absl::StatusOr<ParameterStatus> ParseParameterStatus(std::string_view body);

struct BackendKeyData {
  uint32_t pid = 0;
  uint32_t secret = 0;
};
[[nodiscard]] absl::StatusOr<BackendKeyData> ParseBackendKeyData(std::string_view body);

// 'I' idle, 'T' in transaction, 'E' failed transaction.
[[nodiscard]] absl::StatusOr<char> ParseReadyForQuery(std::string_view body);

// Authentication request codes ('R').
enum class AuthCode : uint32_t {
  kOk = 0,
  kCleartextPassword = 3,
  kMd5Password = 5,
  kSasl = 10,
  kSaslContinue = 11,
  kSaslFinal = 12,
};
struct Authentication {
  uint32_t code = 0;
  std::string_view data;  // md5: 4-byte salt; SASL: mechanism list or SASL data
  // For kSasl: the mechanism names.
  std::vector<std::string_view> mechanisms;
};
[[nodiscard]] absl::StatusOr<Authentication> ParseAuthentication(std::string_view body);

// Frontend 'p' during SASL: SASLInitialResponse.
struct SaslInitialResponse {
  std::string_view mechanism;
  std::string_view data;  // empty if length was -1
};
[[nodiscard]] absl::StatusOr<SaslInitialResponse> ParseSaslInitialResponse(std::string_view body);

// Frontend 'p' as PasswordMessage (cleartext or md5): the NUL-terminated string.
[[nodiscard]] absl::StatusOr<std::string_view> ParsePasswordMessage(std::string_view body);

struct Query {
  std::string_view text;
};
[[nodiscard]] absl::StatusOr<Query> ParseQuery(std::string_view body);

struct Parse {
  std::string_view name;
  std::string_view query;
  std::vector<uint32_t> param_types;
};
[[nodiscard]] absl::StatusOr<Parse> ParseParse(std::string_view body);

// Only the names are decoded; parameters and formats stay opaque.
struct Bind {
  std::string_view portal;
  std::string_view statement;
  std::string_view rest;  // everything after the two names, unparsed
};
[[nodiscard]] absl::StatusOr<Bind> ParseBind(std::string_view body);

// One parameter value of a Bind (`rest` as ParseBind leaves it): parameter
// `index` (0-based), with its format code (0 text, 1 binary; one code for all
// when the Bind gives one). nullopt value: SQL NULL. An error when the
// message is malformed or has fewer parameters.
struct BindParameter {
  std::optional<std::string_view> value;
  uint16_t format = 0;
};
[[nodiscard]] absl::StatusOr<BindParameter> ParseBindParameter(std::string_view rest, size_t index);

// 'C' (Close) and 'D' (Describe) from the frontend: 'S' statement or 'P' portal + name.
struct CloseDescribe {
  char target = 'S';
  std::string_view name;
};
[[nodiscard]] absl::StatusOr<CloseDescribe> ParseCloseDescribe(std::string_view body);

struct Execute {
  std::string_view portal;
  uint32_t max_rows = 0;
};
[[nodiscard]] absl::StatusOr<Execute> ParseExecute(std::string_view body);

// Backend 'C' CommandComplete: the tag, e.g. "SELECT 1".
[[nodiscard]] absl::StatusOr<std::string_view> ParseCommandComplete(std::string_view body);

// Backend 'D' DataRow: column values (nullopt-like: `is_null`).
struct DataRowColumn {
  bool is_null = false;
  std::string_view value;
};
[[nodiscard]] absl::StatusOr<std::vector<DataRowColumn>> ParseDataRow(std::string_view body);

// Backend 'V' FunctionCallResponse: the result, or is_null.
[[nodiscard]] absl::StatusOr<DataRowColumn> ParseFunctionCallResponse(std::string_view body);

// Backend 'A' NotificationResponse.
struct NotificationResponse {
  uint32_t pid = 0;
  std::string_view channel;
  std::string_view payload;
};
[[nodiscard]] absl::StatusOr<NotificationResponse> ParseNotificationResponse(std::string_view body);

}  // namespace pgregion::protocol
