// Fuzz target: every parser in protocol/messages.h on arbitrary bodies, and
// builder -> parser round trips (protocol/message_builder.h) on fuzzed values.
//
// Properties: no parser crashes or reads past its body (ASan); what a builder
// writes, the matching parser reads back unchanged.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "protocol/frame_decoder.h"
#include "protocol/message_builder.h"
#include "protocol/messages.h"

namespace {

namespace p = pgregion::protocol;
using pgregion::fuzz::Check;

// Strings the wire carries NUL-terminated cannot contain NUL.
std::string CString(FuzzedDataProvider& fdp, size_t max) {
  std::string s = fdp.ConsumeRandomLengthString(max);
  for (char& c : s) {
    if (c == '\0') c = '0';
  }
  return s;
}

std::string_view Body(const std::string& whole) {
  std::string_view rest = whole;
  p::Frame frame;
  Check(p::SplitWholeMessage(&rest, &frame), "builder output is not one whole message");
  Check(rest.empty(), "builder wrote more than one message");
  return frame.body;
}

void ParseAll(std::string_view body) {
  // Results are views into `body`; touching them lets ASan check the bounds.
  size_t sink = 0;
  if (auto r = p::ParseStartupPacket(body); r.ok()) {
    for (auto& [k, v] : r->startup.params) sink += k.size() + v.size();
  }
  if (auto r = p::ParseErrorNotice(body); r.ok()) {
    sink += r->severity().size() + r->sqlstate().size() + r->message().size();
  }
  if (auto r = p::ParseParameterStatus(body); r.ok()) sink += r->name.size() + r->value.size();
  (void)p::ParseBackendKeyData(body);
  (void)p::ParseReadyForQuery(body);
  if (auto r = p::ParseAuthentication(body); r.ok()) {
    for (auto m : r->mechanisms) sink += m.size();
  }
  if (auto r = p::ParseSaslInitialResponse(body); r.ok()) sink += r->data.size();
  (void)p::ParsePasswordMessage(body);
  (void)p::ParseQuery(body);
  if (auto r = p::ParseParse(body); r.ok()) sink += r->query.size() + r->param_types.size();
  if (auto r = p::ParseBind(body); r.ok()) {
    sink += r->rest.size();
    for (size_t i = 0; i < 4; ++i) {
      if (auto v = p::ParseBindParameter(r->rest, i); v.ok() && v->value) sink += v->value->size();
    }
  }
  (void)p::ParseCloseDescribe(body);
  (void)p::ParseExecute(body);
  (void)p::ParseCommandComplete(body);
  if (auto r = p::ParseDataRow(body); r.ok()) {
    for (auto& c : *r) sink += c.value.size();
  }
  (void)p::ParseFunctionCallResponse(body);
  (void)p::ParseNotificationResponse(body);
  (void)sink;
}

void RoundTrips(FuzzedDataProvider& fdp) {
  std::string out;
  switch (fdp.ConsumeIntegralInRange<int>(0, 8)) {
    case 0: {
      const std::string text = CString(fdp, 256);
      p::AppendQuery(&out, text);
      auto q = p::ParseQuery(Body(out));
      Check(q.ok() && q->text == text, "Query round trip");
      break;
    }
    case 1: {
      const std::string sqlstate = CString(fdp, 5), message = CString(fdp, 64),
                        detail = CString(fdp, 32);
      p::AppendErrorResponse(
          &out, {.severity = "ERROR", .sqlstate = sqlstate, .message = message, .detail = detail});
      auto e = p::ParseErrorNotice(Body(out));
      Check(e.ok() && e->sqlstate() == sqlstate && e->message() == message &&
                e->severity() == "ERROR" && e->Get('D') == detail,
            "ErrorResponse round trip");
      break;
    }
    case 2: {
      const std::string name = CString(fdp, 32), value = CString(fdp, 64);
      p::AppendParameterStatus(&out, name, value);
      auto s = p::ParseParameterStatus(Body(out));
      Check(s.ok() && s->name == name && s->value == value, "ParameterStatus round trip");
      break;
    }
    case 3: {
      const uint32_t pid = fdp.ConsumeIntegral<uint32_t>(),
                     secret = fdp.ConsumeIntegral<uint32_t>();
      p::AppendBackendKeyData(&out, pid, secret);
      auto k = p::ParseBackendKeyData(Body(out));
      Check(k.ok() && k->pid == pid && k->secret == secret, "BackendKeyData round trip");
      out.clear();
      p::AppendCancelRequest(&out, pid, secret);
      auto c = p::ParseStartupPacket(std::string_view(out).substr(4));
      Check(c.ok() && c->kind == p::StartupPacketKind::kCancel && c->cancel.pid == pid &&
                c->cancel.secret == secret,
            "CancelRequest round trip");
      break;
    }
    case 4: {
      const char status = fdp.PickValueInArray({'I', 'T', 'E'});
      p::AppendReadyForQuery(&out, status);
      auto r = p::ParseReadyForQuery(Body(out));
      Check(r.ok() && *r == status, "ReadyForQuery round trip");
      break;
    }
    case 5: {
      std::vector<std::pair<bool, std::string>> cols;
      const int n = fdp.ConsumeIntegralInRange<int>(0, 8);
      for (int i = 0; i < n; ++i) {
        const bool null = fdp.ConsumeBool();
        cols.emplace_back(null, null ? "" : fdp.ConsumeRandomLengthString(32));
      }
      std::vector<std::pair<bool, std::string_view>> view(cols.begin(), cols.end());
      p::AppendDataRowNullable(&out, view);
      auto r = p::ParseDataRow(Body(out));
      Check(r.ok() && r->size() == cols.size(), "DataRow round trip: column count");
      for (size_t i = 0; i < cols.size(); ++i) {
        Check((*r)[i].is_null == cols[i].first && (*r)[i].value == cols[i].second,
              "DataRow round trip: value");
      }
      break;
    }
    case 6: {
      std::vector<std::pair<std::string, std::string>> params;
      params.emplace_back("user", CString(fdp, 16));
      const int n = fdp.ConsumeIntegralInRange<int>(0, 4);
      for (int i = 0; i < n; ++i) {
        std::string k = CString(fdp, 16);
        if (k.empty()) k = "k";
        // Duplicate names are rightly rejected (as PostgreSQL does).
        bool dup = false;
        for (auto& [name, value] : params) dup |= name == k;
        if (!dup) params.emplace_back(k, CString(fdp, 16));
      }
      std::vector<std::pair<std::string_view, std::string_view>> view(params.begin(), params.end());
      p::AppendStartupMessage(&out, view);
      auto s = p::ParseStartupPacket(std::string_view(out).substr(4));
      Check(s.ok() && s->kind == p::StartupPacketKind::kStartup &&
                s->startup.params.size() == params.size(),
            "StartupMessage round trip");
      for (size_t i = 0; i < params.size(); ++i) {
        Check(s->startup.params[i].first == params[i].first &&
                  s->startup.params[i].second == params[i].second,
              "StartupMessage round trip: parameter");
      }
      break;
    }
    case 7: {
      const std::string mech = CString(fdp, 32), data = fdp.ConsumeRandomLengthString(64);
      p::AppendSaslInitialResponse(&out, mech, data);
      auto s = p::ParseSaslInitialResponse(Body(out));
      Check(s.ok() && s->mechanism == mech && s->data == data, "SASLInitialResponse round trip");
      break;
    }
    case 8: {
      const std::string tag = CString(fdp, 32), password = CString(fdp, 32);
      p::AppendCommandComplete(&out, tag);
      auto c = p::ParseCommandComplete(Body(out));
      Check(c.ok() && *c == tag, "CommandComplete round trip");
      out.clear();
      p::AppendPasswordMessage(&out, password);
      auto pw = p::ParsePasswordMessage(Body(out));
      Check(pw.ok() && *pw == password, "PasswordMessage round trip");
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  if (fdp.ConsumeBool()) {
    RoundTrips(fdp);
  } else {
    // An exact-size copy so ASan sees any read past the body.
    const std::string body = fdp.ConsumeRemainingBytesAsString();
    ParseAll(body);
  }
  return 0;
}
