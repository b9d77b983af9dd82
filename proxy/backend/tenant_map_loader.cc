#include "proxy/backend/tenant_map_loader.h"

#include <libpq-fe.h>

#include <algorithm>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "protocol/str_util.h"
#include "proxy/backend/pq_async_connection.h"

namespace pgregion::proxy {

namespace {

// A failed refresh is retried sooner than the next regular one (a mapping that
// could not load at startup should not wait a whole refresh_s), but not in a
// tight loop against a node that refuses.
constexpr uint32_t kRetryMs = 5000;

std::string_view Value(const PGresult* res, int col) {
  return std::string_view(PQgetvalue(res, 0, col), static_cast<size_t>(PQgetlength(res, 0, col)));
}

// A large map's last owner lets go of it after a refresh replaced it, on the
// loop thread: freeing a million rows takes tens of milliseconds, so a thread
// of its own does that (the allocator is thread-safe and nothing else refers
// to the map any more). Small maps, or no thread to be had: freed here.
void FreeMap(routing::TenantMap* map) {
  constexpr size_t kFreeOffLoop = 50'000;
  if (map->size() >= kFreeOffLoop) {
    try {
      std::thread([map] { delete map; }).detach();
      return;
    } catch (const std::system_error&) {
      // no thread: free it here
    }
  }
  delete map;
}

}  // namespace

// The timer and the connection of the refreshes. Heap-allocated by the
// loader; after Close() it frees itself in the timer's close callback and
// calls nobody.
class TenantMapLoader::Runner : public PqAsyncConnection::Handler {
 public:
  Runner(uv_loop_t* loop, TenantMapLoaderOptions options, Observer* observer)
      : loop_(loop), options_(std::move(options)), observer_(observer), pq_(loop, this) {
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
  }
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  void Start() { Arm(0); }

  void RefreshNow() {
    if (state_ == State::kWaiting) {
      Arm(0);
    } else if (state_ != State::kClosed) {
      again_ = true;
    }
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    observer_ = nullptr;
    pq_.Drop();
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
             [](uv_handle_t* h) { delete static_cast<Runner*>(h->data); });
  }

 private:
  enum class State {
    kWaiting,     // no connection; the timer is the next refresh
    kConnecting,  // the timer is the refresh's deadline
    kQuerying,    // rows arriving; the timer is still the deadline
    kClosed,
  };

  void Arm(uint64_t ms) { uv_timer_start(&timer_, OnTimer, ms, 0); }

  static void OnTimer(uv_timer_t* t) {
    auto* self = static_cast<Runner*>(t->data);
    switch (self->state_) {
      case State::kWaiting:
        self->Begin();
        return;
      case State::kConnecting:
      case State::kQuerying:
        self->Finish(StrCat("timed out after ", self->options_.timeout_ms, " ms"));
        return;
      case State::kClosed:
        return;
    }
  }

  void Begin() {
    std::optional<HealthTarget> target = observer_->TenantMapTarget();
    started_ms_ = uv_now(loop_);
    map_ = std::shared_ptr<routing::TenantMap>(new routing::TenantMap, FreeMap);
    stats_ = TenantMapLoadStats{};
    error_.clear();
    shape_ok_ = false;
    if (!target) {
      state_ = State::kQuerying;  // Finish moves on from a running refresh
      Finish("no node is up");
      return;
    }
    stats_.node = target->name;
    std::vector<std::pair<std::string, std::string>> kv =
        HealthConnectParams(options_.login, *target);
    for (auto& [k, v] : kv) {
      if (k == "application_name") v = "pgregion-tenants";
    }
    // The query only reads, and the server ends it in time even if this
    // connection's deadline cannot (a hung loop thread).
    kv.emplace_back("options", StrCat("-c default_transaction_read_only=on -c statement_timeout=",
                                      options_.timeout_ms));
    state_ = State::kConnecting;
    Arm(options_.timeout_ms);
    pq_.Start(kv, PqAsyncConnection::Notices::kToHandler);
  }

  void OnPqConnected() override {
    state_ = State::kQuerying;
    pq_.SendRowsQuery(options_.query.c_str());
  }

  // id, prefer[, allow[, consistency]]: checked on the first result (a row,
  // or the end of an empty result).
  bool CheckShape(const PGresult* res) {
    if (shape_ok_) return true;
    if (!error_.empty()) return false;
    const int n = PQnfields(res);
    if (n < 2 || n > 4) {
      error_ = StrCat("the query returned ", n,
                      " columns; it must return 2 to 4: id, prefer_regions, and optionally "
                      "allow_regions and consistency");
      return false;
    }
    shape_ok_ = true;
    return true;
  }

  void OnPqResult(const PGresult* res) override {
    switch (PQresultStatus(res)) {
      case PGRES_SINGLE_TUPLE:
        if (CheckShape(res) && map_ != nullptr) Row(res);
        return;
      case PGRES_TUPLES_OK:  // the end of the rows
        CheckShape(res);
        return;
      case PGRES_COMMAND_OK:
        if (error_.empty()) error_ = "the query returned no rows (it must be a SELECT)";
        return;
      default:
        if (error_.empty()) error_ = StrCat("query: ", OneLine(PQresultErrorMessage(res)));
        return;
    }
  }

  void Row(const PGresult* res) {
    ++stats_.rows;
    const int n = PQnfields(res);
    if (PQgetisnull(res, 0, 0) || PQgetlength(res, 0, 0) == 0 ||
        static_cast<size_t>(PQgetlength(res, 0, 0)) > routing::TenantDirectory::kMaxIdBytes) {
      ++stats_.skipped;
      return;
    }
    routing::TenantPolicy policy;
    for (int col = 1; col < std::min(n, 3); ++col) {
      if (PQgetisnull(res, 0, col)) continue;
      if (static_cast<size_t>(PQgetlength(res, 0, col)) > kMaxRegionBytes) {
        ++stats_.skipped;
        return;
      }
      (col == 1 ? policy.prefer_regions : policy.allow_regions) =
          routing::ParseRegionList(Value(res, col));
    }
    if (n == 4 && !PQgetisnull(res, 0, 3) && PQgetlength(res, 0, 3) > 0) {
      policy.consistency = routing::StatementHints::ParseConsistency(Value(res, 3));
      if (!policy.consistency) {
        ++stats_.skipped;
        return;
      }
    }
    CountUnknownRegions(policy);
    if (!map_->Add(Value(res, 0), std::move(policy))) {
      // Only a full map refuses a valid id: the refresh fails, and the rows
      // still to come are read and dropped (the deadline bounds them).
      error_ = StrCat("the query returned more than ", routing::TenantMap::kMaxEntries, " rows");
      map_.reset();
    }
  }

  void CountUnknownRegions(const routing::TenantPolicy& policy) {
    for (const auto* list : {&policy.prefer_regions, &policy.allow_regions}) {
      for (const std::string& region : *list) {
        if (std::find(options_.regions.begin(), options_.regions.end(), region) !=
            options_.regions.end()) {
          continue;
        }
        ++stats_.unknown_regions;
        if (stats_.example_unknown.empty()) stats_.example_unknown = region;
        return;
      }
    }
  }

  void OnPqQueryDone() override {
    pq_.Drop();
    if (error_.empty() && !shape_ok_) error_ = "the query returned no result";
    Finish(std::move(error_));
  }

  void OnPqFailed(std::string why) override { Finish(std::move(why)); }
  // Never watched idle: the connection is dropped as soon as the rows are in.
  // Were it called, it must not pass for a success (an empty `why`).
  void OnPqIdleLost(std::string cause) override {
    Finish(cause.empty() ? std::string("connection lost") : std::move(cause));
  }

  // Ends the running refresh (`why` empty: it succeeded), schedules the next
  // and tells the observer, last.
  void Finish(std::string why) {
    if (state_ == State::kClosed || state_ == State::kWaiting) return;
    pq_.Drop();
    state_ = State::kWaiting;
    stats_.duration_ms = uv_now(loop_) - started_ms_;
    const bool ok = why.empty() && map_ != nullptr;
    uint64_t next = options_.refresh_ms;
    if (!ok) next = std::min<uint64_t>(next, kRetryMs);
    if (again_) next = 0;
    again_ = false;
    Arm(next);
    std::shared_ptr<const routing::TenantMap> map = std::move(map_);
    map_.reset();
    if (ok) {
      observer_->OnTenantMapLoaded(std::move(map), stats_);
    } else {
      observer_->OnTenantMapFailed(
          StrCat(stats_.node.empty() ? "" : StrCat("node ", stats_.node, ": "),
                 why.empty() ? std::string("no result") : why));
    }
  }

  uv_loop_t* loop_;
  TenantMapLoaderOptions options_;
  Observer* observer_;  // null after Close()
  uv_timer_t timer_;
  PqAsyncConnection pq_;
  State state_ = State::kWaiting;
  bool again_ = false;  // RefreshNow() during a refresh
  uint64_t started_ms_ = 0;
  std::shared_ptr<routing::TenantMap> map_;  // being filled; null after too many rows
  TenantMapLoadStats stats_;
  std::string error_;
  bool shape_ok_ = false;
};

TenantMapLoader::TenantMapLoader(uv_loop_t* loop, TenantMapLoaderOptions options,
                                 Observer* observer)
    : runner_(new Runner(loop, std::move(options), observer)) {}

TenantMapLoader::~TenantMapLoader() { Stop(); }

void TenantMapLoader::Start() {
  if (runner_ != nullptr) runner_->Start();
}

void TenantMapLoader::RefreshNow() {
  if (runner_ != nullptr) runner_->RefreshNow();
}

void TenantMapLoader::Stop() {
  if (runner_ == nullptr) return;
  runner_->Close();
  runner_ = nullptr;
}

}  // namespace pgregion::proxy
