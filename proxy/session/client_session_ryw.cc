// ClientSession: read-your-writes capture and tokens.
//
// When a batch sent to the primary may end a transaction that wrote, the LSN
// probe (three FunctionCalls: the session's synchronous_commit, the flush and
// the insert position) is pipelined right behind the client's Sync/Query on
// the same server connection (no extra round trip), the client's
// ReadyForQuery is held until the probe answers, and if that ReadyForQuery
// says idle the session's token moves to the position routing's
// TokenLsnAfterCommit picks (the flush position when the commit was
// synchronous, else the insert position) and is sent as ParameterStatus
// pgregion.ryw_token before the ReadyForQuery. The tracker swallows the
// probe's replies or errors. Never a simple Query (it would
// destroy the client's unnamed statement), and never behind COPY FROM STDIN
// (the copy would abort): such a batch is probed after its ReadyForQuery.
// Sessions that never write pay nothing, and neither does an instance with a
// single node configured (no replica a token could be checked on). See
// DESIGN.md "Consistency levels and read-your-writes tokens".

#include "protocol/message_builder.h"
#include "protocol/messages.h"
#include "protocol/str_util.h"
#include "proxy/backend/pool.h"
#include "proxy/backend/server_connection.h"
#include "proxy/session/client_session.h"
#include "proxy/session/session_env.h"

namespace pgregion::proxy {

namespace p = ::pgregion::protocol;

// Called as the message that ends a unit (Sync, Query, FunctionCall) has been
// written to the bound server.
void ClientSession::AfterUnitSent() {
  const Sending sent = sending_;
  sending_ = Sending();
  ServerConnection* server = server_;
  if (server == nullptr) return;
  ++units_sent_;
  const std::vector<routing::NodeView>& views = env_->node_views();
  const size_t node = static_cast<size_t>(server->pool()->node());
  // Only where the transaction may end here: an autocommit unit, or one
  // that commits. Inside a transaction the writes are not visible yet.
  const bool may_end =
      sent.ends_transaction || (server->tx_status() == 'I' && !sent.begins_transaction);
  // Also on a replica: an optimistic transaction's SET LOCAL runs there first,
  // and again on the primary when the transaction moves (its replay is not
  // sent through here).
  durability_unknown_ |= sent.durability_unknown;
  if (node >= views.size() || !views[node].primary) {
    if (may_end) durability_unknown_ = false;  // that transaction ended where it ran
    return;
  }
  if (sent.write) wrote_ = true;
  if (!wrote_) {
    if (may_end) durability_unknown_ = false;  // nothing of that transaction needs a token
    return;
  }
  if (!may_end) return;
  // With a single node configured no read can go anywhere but the primary, so
  // a token has no use and its probe (a server round of its own, pipelined)
  // would only cost. wrote_ stays set: should a reload add a replica, this
  // session's causal reads keep to the primary until its next write's token.
  if (views.size() < 2) return;
  // A read pipelined behind a write (on the primary: its token is not known
  // yet) ends nothing new: the probe already in flight covers that write.
  if (!sent.write && !sent.ends_transaction && !probe_units_.empty()) return;
  if (sent.copy_in) {
    copy_probe_unit_ = units_sent_;  // anything behind COPY FROM STDIN would abort it
    return;
  }
  SendLsnProbe(units_sent_);
}

void ClientSession::SendLsnProbe(uint64_t unit) {
  server_->SendLsnProbe();
  probe_units_.push_back({unit, durability_unknown_});
  durability_unknown_ = false;  // the next probe is for the next transaction
}

bool ClientSession::HoldReadyForQuery(std::string_view bytes) {
  ++units_answered_;
  if (copy_probe_unit_ != 0 && copy_probe_unit_ == units_answered_) {
    copy_probe_unit_ = 0;
    // The copy is over: the probe can go now (one round trip, COPY only).
    SendLsnProbe(units_answered_);
    server_->Flush();
  }
  if (probe_units_.empty() || probe_units_.front().unit != units_answered_) return false;
  held_ready_ = bytes.size() == 6 ? bytes[5] : 'E';  // status: I, T or E
  return true;
}

namespace {
routing::Lsn ParseLsnOrInvalid(std::string_view text) {
  absl::StatusOr<routing::Lsn> lsn = routing::Lsn::Parse(text);
  return lsn.ok() ? *lsn : routing::Lsn();
}
}  // namespace

void ClientSession::OnLsnProbeDone(const LsnProbeAnswer& answer) {
  bool durability_unknown = true;
  if (!probe_units_.empty()) {
    durability_unknown = probe_units_.front().durability_unknown;
    probe_units_.erase(probe_units_.begin());
  }
  const routing::TokenLsn lsn = routing::TokenLsnAfterCommit(
      answer.synchronous_commit, durability_unknown, ParseLsnOrInvalid(answer.flush),
      ParseLsnOrInvalid(answer.insert));
  // Only a ReadyForQuery that says idle proves the writes committed.
  const bool idle = held_ready_ == 'I';
  routing::TopologySnapshotPtr topo = env_->topology();
  if (idle && lsn.lsn.valid() && topo->system_identifier != 0) {
    env_->metrics().RywToken(lsn.flush ? RywTokenPosition::kFlush : RywTokenPosition::kInsert);
    routing::RywToken token{topo->system_identifier, topo->timeline, lsn.lsn};
    own_token_ = routing::RywToken::Max(own_token_, token);
    wrote_ = false;
    read_after_write_ = true;
    std::string out;
    p::AppendParameterStatus(&out, "pgregion.ryw_token", EffectiveToken().ToString());
    stream_->Write(out);
  }
  if (held_ready_ != 0) {
    std::string ready;
    p::AppendReadyForQuery(&ready, held_ready_);
    stream_->Write(ready);
    held_ready_ = 0;
  }
  stream_->Flush();
  if (probe_units_.empty()) OnServerUnitDone();  // the server may go back to its pool now
}

bool ClientSession::PresentToken(std::string_view text, std::string* error) {
  if (text.empty()) {  // RESET: forget presented tokens (the session's own stay)
    presented_token_ = routing::RywToken();
    return true;
  }
  absl::StatusOr<routing::RywToken> token = routing::RywToken::Parse(text);
  if (!token.ok()) {
    *error = ToStd(token.status().message());
    return false;
  }
  routing::TopologySnapshotPtr topo = env_->topology();
  if (topo->system_identifier != 0 && token->system_identifier != topo->system_identifier) {
    *error = StrCat("invalid pgregion.ryw_token: it is from another cluster (system identifier ",
                    token->system_identifier, ", this cluster is ", topo->system_identifier, ")");
    return false;
  }
  presented_token_ = routing::RywToken::Max(presented_token_, *token);
  return true;
}

}  // namespace pgregion::proxy
