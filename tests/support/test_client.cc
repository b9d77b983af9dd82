#include "tests/support/test_client.h"

#include <cstdlib>

#include "protocol/frame_decoder.h"
#include "protocol/message_builder.h"
#include "protocol/messages.h"
#include "tests/support/scripted_backend.h"

namespace pgregion::testing {

namespace p = ::pgregion::protocol;

struct TestClient::Socket {
  uv_tcp_t tcp;
  uv_connect_t connect;
  TestClient* owner;  // null once the TestClient is gone
  bool closing = false;
};

namespace {
struct WriteReq {
  uv_write_t req;
  std::string data;
};
}  // namespace

std::vector<BackendMessage> DecodeMessages(std::string_view bytes) {
  std::vector<BackendMessage> out;
  p::MessageDecoder decoder(1u << 30, 1u << 30);
  size_t off = 0;
  while (off < bytes.size()) {
    p::DecodeResult r = decoder.Next(bytes.substr(off));
    if (r.status != p::DecodeStatus::kFrame) break;
    off += r.consumed;
    out.push_back({r.frame.type, std::string(r.frame.body)});
  }
  return out;
}

std::string MessageTypes(std::string_view bytes) {
  std::string out;
  for (const BackendMessage& m : DecodeMessages(bytes)) out.push_back(m.type);
  return out;
}

TestClient::TestClient(uv_loop_t* loop, uint16_t port) : loop_(loop) {
  socket_ = new Socket;
  socket_->owner = this;
  uv_tcp_init(loop, &socket_->tcp);
  socket_->tcp.data = socket_;
  socket_->connect.data = socket_;
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_connect(&socket_->connect, &socket_->tcp, reinterpret_cast<const sockaddr*>(&addr),
                 [](uv_connect_t* req, int status) {
                   auto* sock = static_cast<Socket*>(req->data);
                   if (sock->owner == nullptr || sock->closing) return;
                   TestClient* self = sock->owner;
                   if (status != 0) {
                     self->connect_failed_ = true;
                     self->closed_ = true;
                     return;
                   }
                   self->connected_ = true;
                   uv_read_start(
                       reinterpret_cast<uv_stream_t*>(&sock->tcp),
                       [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
                         buf->base = static_cast<char*>(malloc(suggested));
                         buf->len = suggested;
                       },
                       [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
                         auto* sock = static_cast<Socket*>(s->data);
                         std::string data;
                         if (nread > 0) data.assign(buf->base, static_cast<size_t>(nread));
                         free(buf->base);
                         if (sock->owner == nullptr || sock->closing) return;
                         if (nread < 0) {
                           sock->owner->closed_ = true;
                           sock->owner->Close();
                           return;
                         }
                         sock->owner->OnData(data);
                       });
                 });
}

TestClient::~TestClient() {
  if (socket_ != nullptr) socket_->owner = nullptr;
  Close();
}

bool TestClient::WaitConnected(uint64_t timeout_ms) {
  return RunUntil(
             loop_, [&] { return connected_ || connect_failed_; }, timeout_ms) &&
         connected_;
}

void TestClient::Send(std::string_view bytes) {
  if (socket_ == nullptr || socket_->closing) return;
  auto* req = new WriteReq;
  req->data.assign(bytes);
  req->req.data = req;
  uv_buf_t buf = uv_buf_init(req->data.data(), static_cast<unsigned>(req->data.size()));
  if (uv_write(&req->req, reinterpret_cast<uv_stream_t*>(&socket_->tcp), &buf, 1,
               [](uv_write_t* r, int) { delete static_cast<WriteReq*>(r->data); }) != 0) {
    delete req;
  }
}

void TestClient::SendStartup(std::string_view user, std::string_view database,
                             const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::pair<std::string_view, std::string_view>> params = {{"user", user},
                                                                       {"database", database}};
  for (const auto& [k, v] : extra) params.emplace_back(k, v);
  std::string out;
  p::AppendStartupMessage(&out, params);
  Send(out);
}

void TestClient::SendQuery(std::string_view text) {
  std::string out;
  p::AppendQuery(&out, text);
  Send(out);
}

void TestClient::Terminate() {
  std::string out;
  p::AppendTerminate(&out);
  Send(out);
  Close();
}

void TestClient::Close() {
  if (socket_ == nullptr) return;
  Socket* sock = socket_;
  socket_ = nullptr;
  closed_ = true;
  if (sock->closing) return;
  sock->closing = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&sock->tcp),
           [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); });
}

void TestClient::OnData(std::string_view data) {
  in_.append(data);
  p::MessageDecoder decoder(1u << 30, 1u << 30);
  size_t off = 0;
  while (off < in_.size()) {
    p::DecodeResult r = decoder.Next(std::string_view(in_).substr(off));
    if (r.status != p::DecodeStatus::kFrame) break;
    off += r.consumed;
    messages_.push_back({r.frame.type, std::string(r.frame.body)});
  }
  in_.erase(0, off);
}

bool TestClient::WaitReady(size_t n, uint64_t timeout_ms) {
  RunUntil(
      loop_, [&] { return ready_count() >= n || closed_; }, timeout_ms);
  return ready_count() >= n;
}

bool TestClient::WaitClosed(uint64_t timeout_ms) {
  return RunUntil(
      loop_, [&] { return closed_; }, timeout_ms);
}

size_t TestClient::ready_count() const {
  size_t n = 0;
  for (const BackendMessage& m : messages_) n += m.type == 'Z' ? 1 : 0;
  return n;
}

std::string TestClient::Types() const {
  std::string out;
  for (const BackendMessage& m : messages_) out.push_back(m.type);
  return out;
}

std::string TestClient::ReadyStatuses() const {
  std::string out;
  for (const BackendMessage& m : messages_) {
    if (m.type == 'Z' && !m.body.empty()) out.push_back(m.body[0]);
  }
  return out;
}

std::vector<std::string> TestClient::FirstColumns() const {
  std::vector<std::string> out;
  for (const BackendMessage& m : messages_) {
    if (m.type != 'D') continue;
    absl::StatusOr<std::vector<p::DataRowColumn>> row = p::ParseDataRow(m.body);
    out.push_back(row.ok() && !row->empty() ? std::string((*row)[0].value) : "?");
  }
  return out;
}

std::vector<std::string> TestClient::CommandTags() const {
  std::vector<std::string> out;
  for (const BackendMessage& m : messages_) {
    if (m.type != 'C') continue;
    absl::StatusOr<std::string_view> tag = p::ParseCommandComplete(m.body);
    out.emplace_back(tag.ok() ? *tag : "?");
  }
  return out;
}

std::vector<std::string> TestClient::ErrorCodes() const {
  std::vector<std::string> out;
  for (const BackendMessage& m : messages_) {
    if (m.type != 'E') continue;
    absl::StatusOr<p::ErrorNotice> err = p::ParseErrorNotice(m.body);
    out.emplace_back(err.ok() ? err->sqlstate() : "?");
  }
  return out;
}

std::string TestClient::Parameter(std::string_view name) const {
  std::string value;
  for (const BackendMessage& m : messages_) {
    if (m.type != 'S') continue;
    absl::StatusOr<p::ParameterStatus> ps = p::ParseParameterStatus(m.body);
    if (ps.ok() && ps->name == name) value.assign(ps->value);
  }
  return value;
}

}  // namespace pgregion::testing
