#include "tests/wanlink/relay.h"

#include <vector>

namespace wanlink {

const char* ModeName(Relay::Mode mode) {
  switch (mode) {
    case Relay::Mode::kNormal:
      return "normal";
    case Relay::Mode::kDrop:
      return "drop";
    case Relay::Mode::kBlackhole:
      return "blackhole";
  }
  return "normal";
}

Relay::Relay(uv_loop_t* loop, const sockaddr_in& target, uint64_t delay_up_ms,
             uint64_t delay_down_ms, size_t max_in_flight)
    : loop_(loop),
      target_(target),
      delay_ms_{delay_up_ms, delay_down_ms},
      max_in_flight_(max_in_flight) {
  uv_tcp_init(loop_, &server_);
  server_.data = this;
}

int Relay::Listen(const sockaddr_in& addr) {
  int rc = uv_tcp_bind(&server_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 128, OnConnection);
  return rc;
}

int Relay::port() const {
  sockaddr_in addr{};
  int len = sizeof(addr);
  if (uv_tcp_getsockname(&server_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  return ntohs(addr.sin_port);
}

void Relay::OnConnection(uv_stream_t* server, int status) {
  Relay* self = static_cast<Relay*>(server->data);
  if (status != 0) return;
  auto* link = new Link(self, self->loop_, self->next_id_++);
  self->links_[link->id()] = link;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(link->client())) != 0) {
    link->Close();
    return;
  }
  ++self->accepted_;
  switch (self->mode_) {
    case Mode::kDrop:
      link->Reset();
      return;
    case Mode::kBlackhole:
      link->Start(reinterpret_cast<const sockaddr*>(&self->target_), /*stalled=*/true);
      return;
    case Mode::kNormal:
      link->Start(reinterpret_cast<const sockaddr*>(&self->target_), /*stalled=*/false);
      return;
  }
}

template <typename F>
void Relay::ForEachLink(F f) {
  std::vector<Link*> links;
  links.reserve(links_.size());
  for (auto& [id, link] : links_) links.push_back(link);
  // A link that closes removes itself from links_ but stays allocated until its
  // close callbacks run on a later loop turn, so the pointers stay valid here.
  for (Link* link : links) f(link);
}

void Relay::SetDelay(uint64_t up_ms, uint64_t down_ms) {
  delay_ms_[Link::kUp] = up_ms;
  delay_ms_[Link::kDown] = down_ms;
}

void Relay::Drop() {
  mode_ = Mode::kDrop;
  ForEachLink([](Link* l) { l->Reset(); });
}

void Relay::Blackhole() {
  mode_ = Mode::kBlackhole;
  ForEachLink([](Link* l) { l->Stall(); });
}

void Relay::ResetAll() {
  ForEachLink([](Link* l) { l->Reset(); });
}

void Relay::Heal() {
  mode_ = Mode::kNormal;
  ForEachLink([](Link* l) { l->Resume(); });
}

std::string Relay::Status() const {
  return std::string("mode=") + ModeName(mode_) +
         " delay_up_ms=" + std::to_string(delay_ms_[Link::kUp]) +
         " delay_down_ms=" + std::to_string(delay_ms_[Link::kDown]) +
         " connections=" + std::to_string(links_.size()) + " accepted=" + std::to_string(accepted_);
}

void Relay::Shutdown() {
  ForEachLink([](Link* l) { l->Close(); });
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&server_))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
  }
}

}  // namespace wanlink
