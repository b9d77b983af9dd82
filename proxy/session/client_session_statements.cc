// ClientSession: forwarding client messages to the bound server connection,
// with protocol-level prepared statements made to work across pooled server
// connections (transaction pooling): client statement names are rewritten to
// proxy-owned names, statements are re-created where they are missing, and
// replies the server will not send (ParseComplete for a statement it already
// has, CloseComplete for a close we keep to ourselves) are synthesized in place.

#include "protocol/message_builder.h"
#include "protocol/messages.h"
#include "protocol/str_util.h"
#include "proxy/backend/server_connection.h"
#include "proxy/session/client_session.h"

namespace pgregion::proxy {

namespace p = ::pgregion::protocol;
using Owner = p::ReplyTracker::Owner;

namespace {

void AppendParse(std::string* out, std::string_view name, std::string_view tail) {
  p::MessageWriter(out).Begin('P').AddCString(name).AddBytes(tail).End();
}

std::string ParseComplete() {
  std::string out;
  p::MessageWriter(&out).Begin('1').End();
  return out;
}

std::string CloseComplete() {
  std::string out;
  p::MessageWriter(&out).Begin('3').End();
  return out;
}

}  // namespace

void ClientSession::EnsurePrepared(const ClientStatement& st) {
  if (!server_->HasPrepared(st.server_name, st.parse_tail)) SendParse(st, Owner::kProxy);
}

// Parses `st` under its proxy-owned name on the bound server, closing the least
// recently used statement first when the connection holds too many.
void ClientSession::SendParse(const ClientStatement& st, Owner owner) {
  ServerConnection* server = server_;
  std::string out;
  std::string evict = server->NotePreparing(st.server_name, st.parse_tail);
  if (!evict.empty()) {
    p::MessageWriter(&out).Begin('C').AddByte('S').AddCString(evict).End();
    server->tracker().Expect('C', Owner::kProxy);
  }
  AppendParse(&out, st.server_name, st.parse_tail);
  if (!server->tracker().Expect('P', owner, /*tag=*/1)) {
    server->UnnotePreparing(st.server_name);  // skipped by the server after an error
  }
  server->Write(out);
}

void ClientSession::EnsureUnnamed() {
  ServerConnection* server = server_;
  if (server->unnamed_owner() == UnnamedOwnerKey() || unnamed_statement_ == nullptr ||
      unnamed_statement_->parse_tail.empty()) {
    return;
  }
  std::string out;
  AppendParse(&out, "", unnamed_statement_->parse_tail);
  server->tracker().Expect('P', Owner::kProxy);
  server->set_unnamed_owner(UnnamedOwnerKey());
  server->Write(out);
}

void ClientSession::WriteToServer(const p::Frame& frame) {
  ServerConnection* server = server_;
  p::ReplyTracker& tracker = server->tracker();
  if (!frame.first || (tracker.skipping() && frame.type != 'S')) {
    // The rest of a streamed CopyData, or a message the server will ignore
    // until the Sync (an error came first): nothing to rewrite or expect.
    server->Write(frame.bytes);
    return;
  }
  switch (frame.type) {
    case 'P': {
      absl::StatusOr<p::Parse> parse = p::ParseParse(frame.body);
      if (!parse.ok() || parse->name.empty()) {
        if (parse.ok()) server->set_unnamed_owner(UnnamedOwnerKey());
        break;
      }
      auto it = statements_.find(std::string(parse->name));
      if (it == statements_.end()) break;
      const ClientStatement& st = it->second;
      if (server->HasPrepared(st.server_name, st.parse_tail)) {
        tracker.Synthesize(ParseComplete());
      } else {
        SendParse(st, Owner::kClient);
      }
      if (tracker.has_due()) server->DeliverDue();
      return;
    }
    case 'B': {
      absl::StatusOr<p::Bind> bind = p::ParseBind(frame.body);
      if (!bind.ok()) break;
      if (bind->statement.empty()) {
        EnsureUnnamed();
        break;
      }
      auto it = statements_.find(std::string(bind->statement));
      if (it == statements_.end()) break;  // the server reports the unknown name
      EnsurePrepared(it->second);
      std::string out;
      p::MessageWriter(&out)
          .Begin('B')
          .AddCString(bind->portal)
          .AddCString(it->second.server_name)
          .AddBytes(bind->rest)
          .End();
      server->Write(out);
      tracker.Expect('B', Owner::kClient);
      return;
    }
    case 'D': {
      absl::StatusOr<p::CloseDescribe> desc = p::ParseCloseDescribe(frame.body);
      if (!desc.ok() || desc->target != 'S') {
        tracker.Expect('D', Owner::kClient, 0, desc.ok() ? desc->target : 'P');
        server->Write(frame.bytes);
        return;
      }
      if (desc->name.empty()) {
        EnsureUnnamed();
        tracker.Expect('D', Owner::kClient, 0, 'S');
        server->Write(frame.bytes);
        return;
      }
      auto it = statements_.find(std::string(desc->name));
      if (it == statements_.end()) {
        tracker.Expect('D', Owner::kClient, 0, 'S');
        server->Write(frame.bytes);
        return;
      }
      EnsurePrepared(it->second);
      std::string out;
      p::MessageWriter(&out).Begin('D').AddByte('S').AddCString(it->second.server_name).End();
      server->Write(out);
      tracker.Expect('D', Owner::kClient, 0, 'S');
      return;
    }
    case 'C': {
      absl::StatusOr<p::CloseDescribe> close = p::ParseCloseDescribe(frame.body);
      if (close.ok() && close->target == 'S' && !close->name.empty()) {
        // The server-side statement stays for other clients (the LRU bounds it);
        // closing a name that does not exist is no error in PostgreSQL either.
        tracker.Synthesize(CloseComplete());
        if (tracker.has_due()) server->DeliverDue();
        return;
      }
      break;
    }
    case 'Q':
      // A simple Query destroys the server's unnamed statement.
      server->set_unnamed_owner(0);
      break;
    default:
      break;
  }
  switch (frame.type) {
    case 'P':
    case 'B':
    case 'E':
    case 'S':
    case 'Q':
    case 'F':
      tracker.Expect(frame.type, Owner::kClient);
      break;
    case 'C':
      tracker.Expect('C', Owner::kClient);
      break;
    default:
      break;
  }
  server->Write(frame.bytes);
}

}  // namespace pgregion::proxy
