#include "protocol/message_builder.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/messages.h"

namespace pgregion::protocol {
namespace {

constexpr uint32_t kTextOid = 25;

void PutUint32At(std::string* out, size_t pos, uint32_t v) {
  (*out)[pos] = static_cast<char>(v >> 24);
  (*out)[pos + 1] = static_cast<char>(v >> 16);
  (*out)[pos + 2] = static_cast<char>(v >> 8);
  (*out)[pos + 3] = static_cast<char>(v);
}

void AppendErrorOrNotice(std::string* out, char type, const ErrorSpec& e) {
  MessageWriter w(out);
  w.Begin(type);
  // 'V' is the non-localized severity that clients since 9.6 prefer; send both.
  w.AddByte('S').AddCString(e.severity);
  w.AddByte('V').AddCString(e.severity);
  w.AddByte('C').AddCString(e.sqlstate);
  w.AddByte('M').AddCString(e.message);
  if (!e.detail.empty()) w.AddByte('D').AddCString(e.detail);
  if (!e.hint.empty()) w.AddByte('H').AddCString(e.hint);
  w.AddByte('\0');
  w.End();
}

void AppendAuth(std::string* out, AuthCode code, std::string_view data) {
  MessageWriter w(out);
  w.Begin('R').AddInt32(static_cast<uint32_t>(code)).AddBytes(data).End();
}

std::string Quote(std::string_view v, char q) {
  std::string s;
  s.reserve(v.size() + 2);
  s.push_back(q);
  for (char c : v) {
    if (c == q) s.push_back(q);
    s.push_back(c);
  }
  s.push_back(q);
  return s;
}

}  // namespace

MessageWriter& MessageWriter::Begin(char type) {
  if (type != 0) out_->push_back(type);
  start_ = out_->size();
  out_->append(4, '\0');
  return *this;
}

MessageWriter& MessageWriter::AddByte(char b) {
  out_->push_back(b);
  return *this;
}

MessageWriter& MessageWriter::AddInt16(uint16_t v) {
  out_->push_back(static_cast<char>(v >> 8));
  out_->push_back(static_cast<char>(v));
  return *this;
}

MessageWriter& MessageWriter::AddInt32(uint32_t v) {
  const size_t pos = out_->size();
  out_->append(4, '\0');
  PutUint32At(out_, pos, v);
  return *this;
}

MessageWriter& MessageWriter::AddBytes(std::string_view v) {
  out_->append(v);
  return *this;
}

MessageWriter& MessageWriter::AddCString(std::string_view v) {
  out_->append(v);
  out_->push_back('\0');
  return *this;
}

void MessageWriter::End() {
  PutUint32At(out_, start_, static_cast<uint32_t>(out_->size() - start_));
}

void AppendErrorResponse(std::string* out, const ErrorSpec& e) { AppendErrorOrNotice(out, 'E', e); }

void AppendNoticeResponse(std::string* out, const ErrorSpec& e) {
  AppendErrorOrNotice(out, 'N', e);
}

void AppendAuthenticationOk(std::string* out) { AppendAuth(out, AuthCode::kOk, {}); }

void AppendAuthenticationCleartextPassword(std::string* out) {
  AppendAuth(out, AuthCode::kCleartextPassword, {});
}

void AppendAuthenticationMd5Password(std::string* out, std::string_view salt4) {
  AppendAuth(out, AuthCode::kMd5Password, salt4);
}

void AppendAuthenticationSasl(std::string* out, const std::vector<std::string_view>& mechanisms) {
  MessageWriter w(out);
  w.Begin('R').AddInt32(static_cast<uint32_t>(AuthCode::kSasl));
  for (std::string_view m : mechanisms) w.AddCString(m);
  w.AddByte('\0');
  w.End();
}

void AppendAuthenticationSaslContinue(std::string* out, std::string_view data) {
  AppendAuth(out, AuthCode::kSaslContinue, data);
}

void AppendAuthenticationSaslFinal(std::string* out, std::string_view data) {
  AppendAuth(out, AuthCode::kSaslFinal, data);
}

void AppendParameterStatus(std::string* out, std::string_view name, std::string_view value) {
  MessageWriter(out).Begin('S').AddCString(name).AddCString(value).End();
}

void AppendBackendKeyData(std::string* out, uint32_t pid, uint32_t secret) {
  MessageWriter(out).Begin('K').AddInt32(pid).AddInt32(secret).End();
}

void AppendReadyForQuery(std::string* out, char status) {
  MessageWriter(out).Begin('Z').AddByte(status).End();
}

void AppendNegotiateProtocolVersion(std::string* out, uint32_t newest_minor,
                                    const std::vector<std::string_view>& unsupported_options) {
  MessageWriter w(out);
  w.Begin('v').AddInt32(newest_minor).AddInt32(static_cast<uint32_t>(unsupported_options.size()));
  for (std::string_view o : unsupported_options) w.AddCString(o);
  w.End();
}

void AppendCommandComplete(std::string* out, std::string_view tag) {
  MessageWriter(out).Begin('C').AddCString(tag).End();
}

void AppendEmptyQueryResponse(std::string* out) { MessageWriter(out).Begin('I').End(); }

void AppendRowDescription(std::string* out, const std::vector<std::string_view>& columns) {
  MessageWriter w(out);
  w.Begin('T').AddInt16(static_cast<uint16_t>(columns.size()));
  for (std::string_view name : columns) {
    w.AddCString(name)
        .AddInt32(0)  // table OID: not a table column
        .AddInt16(0)  // attribute number
        .AddInt32(kTextOid)
        .AddInt16(0xFFFF)      // typlen -1: variable length
        .AddInt32(0xFFFFFFFF)  // typmod -1
        .AddInt16(0);          // text format
  }
  w.End();
}

void AppendDataRow(std::string* out, const std::vector<std::string_view>& values) {
  MessageWriter w(out);
  w.Begin('D').AddInt16(static_cast<uint16_t>(values.size()));
  for (std::string_view v : values) w.AddInt32(static_cast<uint32_t>(v.size())).AddBytes(v);
  w.End();
}

void AppendDataRowNullable(std::string* out,
                           const std::vector<std::pair<bool, std::string_view>>& is_null_value) {
  MessageWriter w(out);
  w.Begin('D').AddInt16(static_cast<uint16_t>(is_null_value.size()));
  for (const auto& [is_null, v] : is_null_value) {
    if (is_null) {
      w.AddInt32(0xFFFFFFFF);
    } else {
      w.AddInt32(static_cast<uint32_t>(v.size())).AddBytes(v);
    }
  }
  w.End();
}

void AppendStartupMessage(
    std::string* out, const std::vector<std::pair<std::string_view, std::string_view>>& params) {
  MessageWriter w(out);
  w.Begin(0).AddInt32(kProtocolV3);
  for (const auto& [name, value] : params) w.AddCString(name).AddCString(value);
  w.AddByte('\0');
  w.End();
}

void AppendSslRequest(std::string* out) {
  MessageWriter(out).Begin(0).AddInt32(kSslRequestCode).End();
}

void AppendCancelRequest(std::string* out, uint32_t pid, uint32_t secret) {
  MessageWriter(out).Begin(0).AddInt32(kCancelRequestCode).AddInt32(pid).AddInt32(secret).End();
}

void AppendPasswordMessage(std::string* out, std::string_view password) {
  MessageWriter(out).Begin('p').AddCString(password).End();
}

void AppendSaslInitialResponse(std::string* out, std::string_view mechanism,
                               std::string_view data) {
  MessageWriter(out)
      .Begin('p')
      .AddCString(mechanism)
      .AddInt32(static_cast<uint32_t>(data.size()))
      .AddBytes(data)
      .End();
}

void AppendSaslResponse(std::string* out, std::string_view data) {
  MessageWriter(out).Begin('p').AddBytes(data).End();
}

void AppendQuery(std::string* out, std::string_view text) {
  MessageWriter(out).Begin('Q').AddCString(text).End();
}

void AppendSync(std::string* out) { MessageWriter(out).Begin('S').End(); }

void AppendTerminate(std::string* out) { MessageWriter(out).Begin('X').End(); }

void AppendFunctionCall(std::string* out, uint32_t function_oid) {
  AppendFunctionCall(out, function_oid, {});
}

void AppendFunctionCall(std::string* out, uint32_t function_oid,
                        std::initializer_list<std::string_view> text_args) {
  MessageWriter w(out);
  w.Begin('F').AddInt32(function_oid).AddInt16(0);  // no format codes: arguments in text
  w.AddInt16(static_cast<uint16_t>(text_args.size()));
  for (std::string_view arg : text_args) {
    w.AddInt32(static_cast<uint32_t>(arg.size())).AddBytes(arg);
  }
  w.AddInt16(0).End();  // result in text format
}

// Assumes standard_conforming_strings = on (the default since 9.1), so a backslash
// is an ordinary character and only quotes need doubling.
std::string QuoteLiteral(std::string_view v) { return Quote(v, '\''); }

std::string QuoteIdentifier(std::string_view v) { return Quote(v, '"'); }

}  // namespace pgregion::protocol
