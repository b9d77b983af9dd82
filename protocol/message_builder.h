// Builders for the messages the proxy synthesizes, in both directions.
//
// All functions append to a caller-owned std::string so a burst of messages
// becomes one write. Pure.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgregion::protocol {

// Low-level writer: Begin(type) ... Add*() ... End() patches the length.
class MessageWriter {
 public:
  explicit MessageWriter(std::string* out) : out_(out) {}
  // type 0: untagged (startup-phase) packet.
  MessageWriter& Begin(char type);
  MessageWriter& AddByte(char b);
  MessageWriter& AddInt16(uint16_t v);
  MessageWriter& AddInt32(uint32_t v);
  MessageWriter& AddBytes(std::string_view v);    // raw, no terminator
  MessageWriter& AddCString(std::string_view v);  // with NUL
  void End();

 private:
  std::string* out_;
  size_t start_ = 0;  // offset of the length field
};

// ---- Backend messages (proxy -> client) ----
struct ErrorSpec {
  std::string_view severity = "ERROR";  // ERROR, FATAL, PANIC, WARNING, NOTICE, ...
  std::string_view sqlstate;
  std::string_view message;
  std::string_view detail;  // optional
  std::string_view hint;    // optional
};
void AppendErrorResponse(std::string* out, const ErrorSpec& e);
void AppendNoticeResponse(std::string* out, const ErrorSpec& e);
void AppendAuthenticationOk(std::string* out);
void AppendAuthenticationCleartextPassword(std::string* out);
void AppendAuthenticationMd5Password(std::string* out, std::string_view salt4);
void AppendAuthenticationSasl(std::string* out, const std::vector<std::string_view>& mechanisms);
void AppendAuthenticationSaslContinue(std::string* out, std::string_view data);
void AppendAuthenticationSaslFinal(std::string* out, std::string_view data);
void AppendParameterStatus(std::string* out, std::string_view name, std::string_view value);
void AppendBackendKeyData(std::string* out, uint32_t pid, uint32_t secret);
void AppendReadyForQuery(std::string* out, char status);
void AppendNegotiateProtocolVersion(std::string* out, uint32_t newest_minor,
                                    const std::vector<std::string_view>& unsupported_options);
void AppendCommandComplete(std::string* out, std::string_view tag);
void AppendEmptyQueryResponse(std::string* out);
// RowDescription with text columns of type `text` (OID 25).
void AppendRowDescription(std::string* out, const std::vector<std::string_view>& columns);
// DataRow; a column equal to std::nullopt-like `nullptr` is not supported: use
// AppendDataRowNullable.
void AppendDataRow(std::string* out, const std::vector<std::string_view>& values);
void AppendDataRowNullable(std::string* out,
                           const std::vector<std::pair<bool, std::string_view>>& is_null_value);

// ---- Frontend messages (proxy -> server) ----
void AppendStartupMessage(std::string* out,
                          const std::vector<std::pair<std::string_view, std::string_view>>& params);
void AppendSslRequest(std::string* out);
void AppendCancelRequest(std::string* out, uint32_t pid, uint32_t secret);
void AppendPasswordMessage(std::string* out, std::string_view password);
void AppendSaslInitialResponse(std::string* out, std::string_view mechanism, std::string_view data);
void AppendSaslResponse(std::string* out, std::string_view data);
void AppendQuery(std::string* out, std::string_view text);
void AppendSync(std::string* out);
void AppendTerminate(std::string* out);
// FunctionCall 'F' with no arguments and a text result.
void AppendFunctionCall(std::string* out, uint32_t function_oid);
// With text-format arguments (none of them NULL).
void AppendFunctionCall(std::string* out, uint32_t function_oid,
                        std::initializer_list<std::string_view> text_args);

// Quotes a value as a SQL string literal ('it''s', E'' not used: standard_conforming_strings).
std::string QuoteLiteral(std::string_view v);
// Quotes an identifier ("Weird Name").
std::string QuoteIdentifier(std::string_view v);

}  // namespace pgregion::protocol
