// Config values and files; parsing TOML into a Config is in config_parse.cc.

#include "proxy/config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <string>

#include "absl/status/status.h"

namespace pgregion::proxy {

const UserConfig* Config::FindUser(std::string_view name) const {
  for (const UserConfig& user : users) {
    if (user.name == name) return &user;
  }
  return nullptr;
}

const DatabaseConfig* Config::FindDatabase(std::string_view name) const {
  for (const DatabaseConfig& db : databases) {
    if (db.name == name) return &db;
  }
  return nullptr;
}

std::string_view Config::DefaultRoute(const UserConfig* user, std::string_view database) const {
  if (user != nullptr && !user->route.empty()) return user->route;
  const DatabaseConfig* db = FindDatabase(database);
  if (db != nullptr && !db->route.empty()) return db->route;
  return routing.route;
}

std::string_view Config::DefaultConsistency(const UserConfig* user,
                                            std::string_view database) const {
  if (user != nullptr && !user->consistency.empty()) return user->consistency;
  const DatabaseConfig* db = FindDatabase(database);
  if (db != nullptr && !db->consistency.empty()) return db->consistency;
  return routing.consistency;
}

bool Config::DefaultOptimistic(const UserConfig* user, std::string_view database) const {
  if (user != nullptr && user->optimistic_transactions) return *user->optimistic_transactions;
  const DatabaseConfig* db = FindDatabase(database);
  if (db != nullptr && db->optimistic_transactions) return *db->optimistic_transactions;
  return routing.optimistic_transactions;
}

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text) {
  auto bad = [text](std::string_view why) {
    return absl::InvalidArgumentError("\"" + std::string(text) + "\": " + std::string(why) +
                                      " (expected \"ipv4:port\" or \"[ipv6]:port\")");
  };
  std::string_view host;
  std::string_view port;
  ListenAddress address;
  if (text.starts_with("[")) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.starts_with(":")) return bad("missing port");
    port = rest.substr(1);
    in6_addr addr6;
    if (inet_pton(AF_INET6, std::string(host).c_str(), &addr6) != 1) {
      return bad("not a numeric IPv6 address");
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad("IPv6 addresses need brackets");
    in_addr addr4;
    if (host.empty()) return bad("missing host");
    if (inet_pton(AF_INET, std::string(host).c_str(), &addr4) != 1) {
      return bad("not a numeric IPv4 address");
    }
  }
  uint32_t number = 0;
  if (port.empty()) return bad("missing port");
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (ec != std::errc() || end != port.data() + port.size() || number < 1 || number > 65535) {
    return bad("port must be a number from 1 to 65535");
  }
  address.host = std::string(host);
  address.port = static_cast<uint16_t>(number);
  return address;
}

std::string FormatListenAddress(const ListenAddress& address) {
  if (address.host.find(':') != std::string::npos) {
    return "[" + address.host + "]:" + std::to_string(address.port);
  }
  return address.host + ":" + std::to_string(address.port);
}

absl::StatusOr<std::shared_ptr<const Config>> LoadConfigFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "cannot open config file " + path);
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      return absl::ErrnoToStatus(error, "cannot read config file " + path);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return LoadConfigString(text, path);
}

}  // namespace pgregion::proxy
