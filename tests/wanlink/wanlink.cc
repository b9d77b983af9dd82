// wanlink: a TCP relay that puts a simulated WAN link between a client and a
// target on one machine (this machine cannot shape traffic with netem).
//
//   wanlink --listen 127.0.0.1:P --target 127.0.0.1:T --control 127.0.0.1:C
//           [--delay-ms N] [--delay-up-ms X] [--delay-down-ms Y]
//           [--max-buffer-bytes B]
//
// Port 0 picks a free port. Once both sockets listen it prints one line,
// "ready listen=127.0.0.1:P control=127.0.0.1:C", and flushes stdout.
// "up" is client -> target, "down" is target -> client; --delay-ms sets both.
//
// Control: a line protocol on the control port, one reply line per command:
//   delay MS | delay UP_MS DOWN_MS   set the one-way delays (new data only)
//   drop                             RST all connections, RST new ones
//   blackhole                        accept, never answer; existing ones stall
//   reset                            RST all current connections (one shot)
//   heal                             back to normal
//   status                           "ok mode=... delay_up_ms=... ..."
// Replies are "ok[ details]" or "error <reason>". SIGTERM/SIGINT exit 0.
#include <uv.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/wanlink/relay.h"

namespace wanlink {
namespace {

constexpr size_t kMaxLine = 1024;

// One connection to the control port. Deletes itself in its close callback.
class ControlClient {
 public:
  ControlClient(uv_loop_t* loop, Relay* relay, std::set<ControlClient*>* registry)
      : relay_(relay), registry_(registry) {
    uv_tcp_init(loop, &tcp_);
    tcp_.data = this;
    registry_->insert(this);
  }
  uv_tcp_t* tcp() { return &tcp_; }
  void Start() { uv_read_start(stream(), OnAlloc, OnRead); }
  void Close() {
    if (closing_) return;
    closing_ = true;
    registry_->erase(this);
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_),
             [](uv_handle_t* h) { delete static_cast<ControlClient*>(h->data); });
  }

 private:
  struct WriteReq {
    uv_write_t req;
    std::string text;
  };

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }

  static void OnAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    auto* self = static_cast<ControlClient*>(h->data);
    *buf = uv_buf_init(self->buf_, sizeof(self->buf_));
  }

  static void OnRead(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
    auto* self = static_cast<ControlClient*>(s->data);
    if (nread < 0) {
      self->Close();
      return;
    }
    self->line_.append(self->buf_, static_cast<size_t>(nread));
    size_t nl;
    while (!self->closing_ && (nl = self->line_.find('\n')) != std::string::npos) {
      std::string line = self->line_.substr(0, nl);
      self->line_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      self->Reply(self->Execute(line));
    }
    if (self->line_.size() > kMaxLine) {
      self->Reply("error line too long");
      self->Close();
    }
  }

  std::string Execute(const std::string& line) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    std::vector<std::string> args;
    for (std::string a; in >> a;) args.push_back(a);
    if (cmd == "delay") {
      uint64_t v[2];
      if (args.empty() || args.size() > 2) return "error usage: delay MS | delay UP_MS DOWN_MS";
      for (size_t i = 0; i < args.size(); ++i) {
        char* end = nullptr;
        const unsigned long long x = std::strtoull(args[i].c_str(), &end, 10);
        if (args[i].empty() || *end != '\0' || x > 3'600'000) return "error bad delay";
        v[i] = x;
      }
      relay_->SetDelay(v[0], args.size() == 2 ? v[1] : v[0]);
      return "ok";
    }
    if (!args.empty()) return "error unexpected arguments";
    if (cmd == "drop") {
      relay_->Drop();
    } else if (cmd == "blackhole") {
      relay_->Blackhole();
    } else if (cmd == "reset") {
      relay_->ResetAll();
    } else if (cmd == "heal") {
      relay_->Heal();
    } else if (cmd == "status") {
      return "ok " + relay_->Status();
    } else {
      return "error unknown command";
    }
    return "ok";
  }

  void Reply(const std::string& text) {
    if (closing_) return;
    auto* w = new WriteReq{};
    w->text = text + "\n";
    w->req.data = w;
    uv_buf_t buf = uv_buf_init(w->text.data(), static_cast<unsigned int>(w->text.size()));
    if (uv_write(&w->req, stream(), &buf, 1,
                 [](uv_write_t* r, int) { delete static_cast<WriteReq*>(r->data); }) != 0) {
      delete w;
      Close();
    }
  }

  Relay* relay_;
  std::set<ControlClient*>* registry_;  // open clients, closed at exit
  uv_tcp_t tcp_;
  bool closing_ = false;
  std::string line_;
  char buf_[4096];
};

struct App {
  uv_loop_t* loop = nullptr;
  Relay* relay = nullptr;
  uv_tcp_t control;
  uv_signal_t sigterm;
  uv_signal_t sigint;
  std::set<ControlClient*> control_clients;
};

void OnControlConnection(uv_stream_t* server, int status) {
  App* app = static_cast<App*>(server->data);
  if (status != 0) return;
  auto* c = new ControlClient(app->loop, app->relay, &app->control_clients);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(c->tcp())) != 0) {
    c->Close();
    return;
  }
  c->Start();
}

void OnSignal(uv_signal_t* sig, int) {
  App* app = static_cast<App*>(sig->data);
  app->relay->Shutdown();
  uv_close(reinterpret_cast<uv_handle_t*>(&app->control), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&app->sigterm), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&app->sigint), nullptr);
  const std::set<ControlClient*> open = app->control_clients;
  for (ControlClient* c : open) c->Close();
}

bool ParseAddr(const std::string& text, sockaddr_in* out) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  const std::string host = text.substr(0, colon);
  char* end = nullptr;
  const long port = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (colon + 1 == text.size() || *end != '\0' || port < 0 || port > 65535) return false;
  return uv_ip4_addr(host.c_str(), static_cast<int>(port), out) == 0;
}

bool ParseMs(const char* text, uint64_t* out) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v > 3'600'000) return false;
  *out = v;
  return true;
}

int Usage(const char* msg) {
  std::fprintf(stderr,
               "wanlink: %s\nusage: wanlink --listen HOST:PORT --target HOST:PORT "
               "--control HOST:PORT [--delay-ms N] [--delay-up-ms X] [--delay-down-ms Y] "
               "[--max-buffer-bytes B]\n",
               msg);
  return 2;
}

int Main(int argc, char** argv) {
  sockaddr_in listen{}, target{}, control{};
  bool have_listen = false, have_target = false, have_control = false;
  uint64_t delay = 0, up = UINT64_MAX, down = UINT64_MAX, max_buffer = 4u << 20;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return Usage(("missing value for " + flag).c_str());
    const char* value = argv[++i];
    bool ok = true;
    if (flag == "--listen") {
      ok = have_listen = ParseAddr(value, &listen);
    } else if (flag == "--target") {
      ok = have_target = ParseAddr(value, &target);
    } else if (flag == "--control") {
      ok = have_control = ParseAddr(value, &control);
    } else if (flag == "--delay-ms") {
      ok = ParseMs(value, &delay);
    } else if (flag == "--delay-up-ms") {
      ok = ParseMs(value, &up);
    } else if (flag == "--delay-down-ms") {
      ok = ParseMs(value, &down);
    } else if (flag == "--max-buffer-bytes") {
      char* end = nullptr;
      max_buffer = std::strtoull(value, &end, 10);
      ok = *value != '\0' && *end == '\0' && max_buffer >= 65536;
    } else {
      return Usage(("unknown option " + flag).c_str());
    }
    if (!ok) return Usage(("bad value for " + flag + ": " + value).c_str());
  }
  if (!have_listen || !have_target || !have_control) {
    return Usage("--listen, --target and --control are required");
  }
  if (up == UINT64_MAX) up = delay;
  if (down == UINT64_MAX) down = delay;

  std::signal(SIGPIPE, SIG_IGN);
  App app;
  app.loop = uv_default_loop();
  Relay relay(app.loop, target, up, down, max_buffer);
  app.relay = &relay;
  if (int rc = relay.Listen(listen); rc != 0) {
    std::fprintf(stderr, "wanlink: listen: %s\n", uv_strerror(rc));
    return 1;
  }
  uv_tcp_init(app.loop, &app.control);
  app.control.data = &app;
  int rc = uv_tcp_bind(&app.control, reinterpret_cast<const sockaddr*>(&control), 0);
  if (rc == 0)
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&app.control), 16, OnControlConnection);
  if (rc != 0) {
    std::fprintf(stderr, "wanlink: control listen: %s\n", uv_strerror(rc));
    return 1;
  }
  sockaddr_in bound{};
  int len = sizeof(bound);
  uv_tcp_getsockname(&app.control, reinterpret_cast<sockaddr*>(&bound), &len);
  for (uv_signal_t* s : {&app.sigterm, &app.sigint}) {
    uv_signal_init(app.loop, s);
    s->data = &app;
  }
  uv_signal_start(&app.sigterm, OnSignal, SIGTERM);
  uv_signal_start(&app.sigint, OnSignal, SIGINT);

  char host[64];
  uv_ip4_name(&listen, host, sizeof(host));
  std::string line = std::string("ready listen=") + host + ":" + std::to_string(relay.port());
  uv_ip4_name(&control, host, sizeof(host));
  line += std::string(" control=") + host + ":" + std::to_string(ntohs(bound.sin_port));
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);

  uv_run(app.loop, UV_RUN_DEFAULT);
  uv_loop_close(app.loop);
  return 0;
}

}  // namespace
}  // namespace wanlink

int main(int argc, char** argv) { return wanlink::Main(argc, argv); }
