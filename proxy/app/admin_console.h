// The admin console: a client that logs in to the virtual database `pgregion`
// as a `[[users]]` entry with `admin = true` talks to the proxy itself, in SQL,
// as PgBouncer's console does: SHOW NODES / POOLS / CLIENTS / SERVERS / STATS /
// CONFIG / VERSION / HELP. No server connection is ever involved. Only the
// simple query protocol (psql, and drivers in simple mode); extended-protocol
// messages get an error until their Sync.
//
// One per console client, owned by its ClientSession, on the loop thread; reads
// the ProxyApp's state (topology, pools, sessions, metrics) when asked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/frame_decoder.h"
#include "proxy/admin/console_command.h"
#include "proxy/config/config.h"
#include "proxy/session/console_session.h"

namespace pgregion::proxy {

class ProxyApp;

class AdminConsole final : public ConsoleSession {
 public:
  // The console for `user`, or nullptr with the reason when it may not use it.
  static std::unique_ptr<AdminConsole> Open(ProxyApp* app, const UserConfig* user,
                                            std::string* error);

  // What follows AuthenticationOk: ParameterStatus, BackendKeyData, ReadyForQuery.
  std::string Welcome(uint32_t pid, uint32_t secret) const override;
  // The complete answer to one client message (empty for messages that get none).
  std::string Handle(const protocol::Frame& frame) override;

 private:
  AdminConsole(ProxyApp* app, std::string user) : app_(app), user_(std::move(user)) {}
  std::string Query(std::string_view text);
  // Fills `table`, or returns an error message (SQLSTATE in `sqlstate`).
  std::string Execute(const ConsoleCommand& cmd, ConsoleTable* table, std::string* sqlstate);
  ConsoleTable Nodes() const;
  ConsoleTable Pools() const;
  ConsoleTable Clients() const;
  ConsoleTable Servers() const;
  ConsoleTable Stats() const;
  ConsoleTable Tenants() const;

  ProxyApp* app_;
  std::string user_;
  bool extended_error_ = false;  // an extended-protocol batch was refused; skip to Sync
};

}  // namespace pgregion::proxy
