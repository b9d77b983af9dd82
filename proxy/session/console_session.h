// A client logged in to the admin console's virtual database: every message
// is answered by the proxy itself (the app's AdminConsole implements it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/frame_decoder.h"

namespace pgregion::proxy {

class ConsoleSession {
 public:
  // The virtual database that selects the console at login.
  static constexpr std::string_view kDatabase = "pgregion";

  virtual ~ConsoleSession() = default;
  // What follows AuthenticationOk: ParameterStatus, BackendKeyData, ReadyForQuery.
  virtual std::string Welcome(uint32_t pid, uint32_t secret) const = 0;
  // The complete answer to one client message (empty for messages that get none).
  virtual std::string Handle(const protocol::Frame& frame) = 0;
};

}  // namespace pgregion::proxy
