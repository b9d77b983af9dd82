#include "proxy/backend/replay_poller.h"

#include <libpq-fe.h>

#include <algorithm>
#include <string>
#include <utility>

#include "protocol/str_util.h"
#include "proxy/backend/pq_async_connection.h"
#include "proxy/net/log.h"

namespace pgregion::proxy {

namespace {

// How long a poll that found replay paused keeps new reads from waiting on the node.
constexpr uint64_t kPausedHoldMs = 100;

// The replay LSN and whether replay will move: paused (or pausing), or the
// node has left recovery (promoted; the health probe will tell the topology).
// pg_get_wal_replay_pause_state() raises an error outside recovery, hence the CASE.
constexpr char kPollSql[] =
    "SELECT pg_last_wal_replay_lsn(),"
    " CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() <> 'not paused'"
    " ELSE true END";

}  // namespace

// ---------------------------------------------------------------- NodePoller

// The connection and poll loop of one node. Heap-allocated by the poller;
// after Close() it frees itself in the timer's close callback and calls nobody.
class ReplayPoller::NodePoller : public PqAsyncConnection::Handler {
 public:
  NodePoller(ReplayPoller* owner, size_t index)
      : owner_(owner), index_(index), pq_(owner->loop_, this) {
    uv_timer_init(owner->loop_, &timer_);
    timer_.data = this;
  }
  NodePoller(const NodePoller&) = delete;
  NodePoller& operator=(const NodePoller&) = delete;

  // False while backing off after a failure.
  bool available() const { return state_ != State::kBackoff && state_ != State::kClosed; }
  // The last poll found replay paused, a moment ago: a new read would only wait
  // for the next poll to say so again (the topology learns it at the next probe).
  bool recently_paused() const { return paused_ && now_ms() < paused_seen_ms_ + kPausedHoldMs; }

  // A waiter arrived: connect, or poll now unless a poll is in flight or due.
  void Kick() {
    switch (state_) {
      case State::kIdle:
        Connect();
        return;
      case State::kReady:
        if (!poll_due_) SendPoll();
        return;
      case State::kConnecting:
      case State::kPolling:
      case State::kBackoff:
      case State::kClosed:
        return;
    }
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    owner_ = nullptr;
    pq_.Drop();
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
             [](uv_handle_t* h) { delete static_cast<NodePoller*>(h->data); });
  }

 private:
  enum class State {
    kIdle,        // no connection
    kConnecting,  // PQconnectPoll in progress; the timer is the connect deadline
    kReady,       // connected, no query; the timer (poll_due_) is the next poll
    kPolling,     // the query in flight; the timer is its deadline
    kBackoff,     // a connect or poll failed; the timer ends the back-off
    kClosed,
  };

  const HealthTarget& target() const { return owner_->targets_[index_]; }
  uint64_t now_ms() const { return uv_now(owner_->loop_); }

  void Arm(uint64_t ms) { uv_timer_start(&timer_, OnTimer, ms, 0); }

  static void OnTimer(uv_timer_t* t) {
    auto* self = static_cast<NodePoller*>(t->data);
    switch (self->state_) {
      case State::kConnecting:
        self->Fail(
            StrCat("connect timed out after ", self->owner_->options_.connect_timeout_ms, " ms"));
        return;
      case State::kPolling:
        self->Fail(StrCat("poll timed out after ", self->owner_->options_.timeout_ms, " ms"));
        return;
      case State::kReady:
        self->poll_due_ = false;
        if (self->owner_->waiter_count(self->index_) > 0) self->SendPoll();
        return;
      case State::kBackoff:
        self->state_ = State::kIdle;
        if (self->owner_->waiter_count(self->index_) > 0) self->Connect();
        return;
      case State::kIdle:
      case State::kClosed:
        return;
    }
  }

  // A failure to start ends in OnPqFailed, which moves on from kConnecting.
  void Connect() {
    std::vector<std::pair<std::string, std::string>> kv =
        HealthConnectParams(owner_->options_, target());
    for (auto& [k, v] : kv) {
      if (k == "application_name") v = "pgregion-ryw";
    }
    state_ = State::kConnecting;
    Arm(owner_->options_.connect_timeout_ms);
    pq_.Start(kv, PqAsyncConnection::Notices::kLibpqDefault);
  }

  void OnPqConnected() override {
    state_ = State::kReady;
    uv_timer_stop(&timer_);
    poll_due_ = false;
    if (owner_->waiter_count(index_) > 0) {
      SendPoll();
    } else if (!pq_.WatchIdle()) {
      Fail("cannot watch the connection's socket");
    }
  }

  void SendPoll() {
    sent_ms_ = now_ms();
    state_ = State::kPolling;
    Arm(owner_->options_.timeout_ms);
    pq_.SendQuery(kPollSql);
  }

  void OnPqResult(const PGresult* res) override {
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 2) {
      have_row_ = true;
      replay_ = routing::Lsn();
      if (!PQgetisnull(res, 0, 0)) {
        absl::StatusOr<routing::Lsn> lsn = routing::Lsn::Parse(PQgetvalue(res, 0, 0));
        if (lsn.ok()) replay_ = *lsn;
      }
      paused_ = PQgetisnull(res, 0, 1) || std::string_view(PQgetvalue(res, 0, 1)) == "t";
    } else if (error_.empty()) {
      error_ = StrCat("poll: ", PQresultErrorMessage(res));
    }
  }

  void OnPqQueryDone() override {
    const bool ok = have_row_ && error_.empty();
    have_row_ = false;
    std::string why = std::move(error_);
    error_.clear();
    if (!ok) {
      Fail(why.empty() ? "poll: no result" : why);
      return;
    }
    state_ = State::kReady;
    if (paused_) paused_seen_ms_ = now_ms();
    // The next poll one interval after this one was sent, while anyone waits.
    const uint64_t due = sent_ms_ + kPollIntervalMs;
    const uint64_t now = now_ms();
    poll_due_ = true;
    Arm(due > now ? due - now : 0);
    if (!pq_.WatchIdle()) {
      Fail("cannot watch the connection's socket");
      return;
    }
    owner_->OnPolled(index_, replay_, paused_);  // last: waiters may do anything
  }

  void OnPqFailed(std::string why) override { Fail(std::move(why)); }

  // Between waits the server closed the connection. A lost idle connection is
  // no failure: reconnect on demand.
  void OnPqIdleLost(std::string cause) override {
    LogDebug("ryw_poll_connection_closed").Kv("node", target().name).Kv("error", cause);
    uv_timer_stop(&timer_);
    poll_due_ = false;
    state_ = State::kIdle;
    if (owner_->waiter_count(index_) > 0) Connect();
  }

  // Drops the connection, backs off, and tells the waiters.
  void Fail(std::string why) {
    pq_.Drop();
    have_row_ = false;
    error_.clear();
    poll_due_ = false;
    state_ = State::kBackoff;
    Arm(kBackoffMs);
    LogWarn("ryw_poll_failed").Kv("node", target().name).Kv("error", why);
    owner_->OnPollFailed(index_);  // last: waiters may do anything
  }

  ReplayPoller* owner_;  // null after Close()
  size_t index_;
  uv_timer_t timer_;
  PqAsyncConnection pq_;
  State state_ = State::kIdle;
  bool poll_due_ = false;  // kReady: the timer is the next poll
  uint64_t sent_ms_ = 0;
  bool have_row_ = false;
  routing::Lsn replay_;
  bool paused_ = false;  // what the last poll said
  uint64_t paused_seen_ms_ = 0;
  std::string error_;
};

// ---------------------------------------------------------------- ReplayPoller

ReplayPoller::ReplayPoller(uv_loop_t* loop, HealthCheckerOptions options,
                           std::vector<HealthTarget> targets, routing::Topology* topology,
                           HealthChecker::Observer* observer)
    : loop_(loop),
      options_(std::move(options)),
      targets_(std::move(targets)),
      topology_(topology),
      observer_(observer),
      pollers_(targets_.size(), nullptr),
      waiters_(targets_.size()) {}

ReplayPoller::~ReplayPoller() { Stop(); }

void ReplayPoller::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (NodePoller*& p : pollers_) {
    if (p != nullptr) p->Close();
    p = nullptr;
  }
  for (std::vector<Waiter*>& w : waiters_) w.clear();
}

bool ReplayPoller::AddWaiter(size_t node, Waiter* waiter) {
  if (stopped_ || node >= pollers_.size() || node >= topology_->size()) return false;
  NodePoller*& p = pollers_[node];
  if (p == nullptr) p = new NodePoller(this, node);
  if (!p->available() || p->recently_paused()) return false;
  std::vector<Waiter*>& w = waiters_[node];
  if (std::find(w.begin(), w.end(), waiter) == w.end()) w.push_back(waiter);
  // A connect can fail at once: then the caller hears it from the return
  // value, not from a callback in the middle of registering.
  kicking_ = true;
  p->Kick();
  kicking_ = false;
  if (p->available()) return true;
  RemoveWaiter(node, waiter);
  return false;
}

void ReplayPoller::RemoveWaiter(size_t node, Waiter* waiter) {
  if (node >= waiters_.size()) return;
  std::erase(waiters_[node], waiter);
}

size_t ReplayPoller::waiter_count(size_t node) const {
  return node < waiters_.size() ? waiters_[node].size() : 0;
}

void ReplayPoller::OnPolled(size_t node, routing::Lsn replay, bool paused) {
  ++polls_;
  if (replay.valid()) {
    const uint64_t version = topology_->snapshot()->version;
    routing::TopologyUpdate update = topology_->OnReplayLsn(node, replay, uv_now(loop_));
    if (topology_->snapshot()->version != version) observer_->OnTopologyUpdate(node, update);
  }
  Wake(node, /*ok=*/true, paused);
}

void ReplayPoller::OnPollFailed(size_t node) { Wake(node, /*ok=*/false, /*paused=*/false); }

void ReplayPoller::Wake(size_t node, bool ok, bool paused) {
  if (stopped_ || kicking_ || node >= waiters_.size() || waiters_[node].empty()) return;
  // Waiters come and go as they are told: walk a copy, skip those gone meanwhile.
  const std::vector<Waiter*> woken = waiters_[node];
  for (Waiter* w : woken) {
    if (stopped_) return;
    const std::vector<Waiter*>& now = waiters_[node];
    if (std::find(now.begin(), now.end(), w) == now.end()) continue;
    w->OnReplayPolled(node, ok, paused);
  }
}

}  // namespace pgregion::proxy
