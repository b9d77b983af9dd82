#include "proxy/config/config.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace pgregion::proxy {
namespace {

// Minimal valid tail: one user and one node.
constexpr std::string_view kUserAndNode = R"(
[[users]]
name = "app"
password = "secret"

[[nodes]]
name = "n1"
region = "r1"
host = "127.0.0.1"
)";

absl::StatusOr<std::shared_ptr<const Config>> Load(std::string_view text) {
  return LoadConfigString(text, "test.toml");
}

// Loads `text`, expects failure, returns the message.
std::string LoadError(std::string_view text) {
  auto config = Load(text);
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Checks that `message` names the file, line and key.
void CheckNames(const std::string& message, int line, std::string_view key) {
  INFO(message);
  CHECK(Contains(message, "test.toml:" + std::to_string(line) + ": " + std::string(key) + ":"));
}

TEST_CASE("config: a full config parses with every field") {
  constexpr std::string_view kFull = R"(# full
[proxy]
listen = "0.0.0.0:7432"
region = "eu"
max_client_connections = 500
max_message_bytes = 1048576
client_login_timeout_ms = 3000
shutdown_timeout_s = 5

[admin]
listen = "[::1]:9100"
bearer_token = "tok"

[tls]
mode = "require"
cert_file = "/etc/cert.pem"
key_file = "/etc/key.pem"

[server_tls]
mode = "verify-full"
ca_file = "/etc/ca.pem"

[[users]]
name = "app"
password = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"
auth = "scram-sha-256"
server_user = "app_backend"
server_password = "backend-secret"

[[users]]
name = "legacy"
password = "md5d41d8cd98f00b204e9800998ecf8427e"
auth = "md5"

[[users]]
name = "ops"
auth = "trust"
admin = true

[pool]
mode = "session"
size = 7
min_idle = 2
acquire_timeout_ms = 1500
idle_timeout_s = 60
connect_timeout_ms = 2500

[routing]
consistency = "bounded"
max_staleness_ms = 250
max_replica_lag_ms = 800
ryw_wait_ms = 20
read_deadline_ms = 750
unknown_functions = "replica"
read_only_functions = ["report_total", "public.lookup"]
write_functions = ["bump_counter"]
statement_cache_size = 123
classify_max_bytes = 4096
classify_max_depth = 50

[health]
interval_ms = 200
timeout_ms = 900
failures_to_down = 4
successes_to_up = 5
recover_hold_s = 7

[failover]
write_wait_ms = 3000

[[nodes]]
name = "eu1"
region = "eu"
host = "10.0.0.1"
port = 5433

[[nodes]]
name = "us1"
region = "us"
host = "db.us.example"

[log]
level = "debug"
format = "json"
)";
  auto loaded = Load(kFull);
  REQUIRE_MESSAGE(loaded.ok(), loaded.status().ToString());
  const Config& c = **loaded;
  CHECK(c.source_path == "test.toml");
  CHECK(c.proxy.listen.host == "0.0.0.0");
  CHECK(c.proxy.listen.port == 7432);
  CHECK(c.proxy.region == "eu");
  CHECK(c.proxy.max_client_connections == 500);
  CHECK(c.proxy.max_message_bytes == 1048576);
  CHECK(c.proxy.client_login_timeout_ms == 3000);
  CHECK(c.proxy.shutdown_timeout_s == 5);

  CHECK(c.admin.enabled);
  CHECK(c.admin.listen.host == "::1");
  CHECK(c.admin.listen.port == 9100);
  CHECK(c.admin.bearer_token == "tok");

  CHECK(c.tls.mode == TlsMode::kRequire);
  CHECK(c.tls.cert_file == "/etc/cert.pem");
  CHECK(c.tls.key_file == "/etc/key.pem");
  CHECK(c.server_tls.mode == ServerTlsMode::kVerifyFull);
  CHECK(c.server_tls.ca_file == "/etc/ca.pem");

  REQUIRE(c.users.size() == 3);
  CHECK(c.users[0].name == "app");
  CHECK(c.users[0].password == "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy");
  CHECK(c.users[0].auth == AuthMethod::kScramSha256);
  CHECK(c.users[0].server_user == "app_backend");
  CHECK(c.users[0].server_password == "backend-secret");
  CHECK_FALSE(c.users[0].admin);
  CHECK(c.users[1].name == "legacy");
  CHECK(c.users[1].auth == AuthMethod::kMd5);
  CHECK(c.users[1].server_user == "legacy");                 // defaults to the name
  CHECK(c.users[1].server_password == c.users[1].password);  // answers md5 backends
  CHECK(c.users[2].name == "ops");
  CHECK(c.users[2].auth == AuthMethod::kTrust);
  CHECK(c.users[2].password.empty());
  CHECK(c.users[2].admin);

  CHECK(c.pool.mode == PoolMode::kSession);
  CHECK(c.pool.size == 7);
  CHECK(c.pool.min_idle == 2);
  CHECK(c.pool.acquire_timeout_ms == 1500);
  CHECK(c.pool.idle_timeout_s == 60);
  CHECK(c.pool.connect_timeout_ms == 2500);

  CHECK(c.routing.consistency == "bounded");
  CHECK(c.routing.max_staleness_ms == 250);
  CHECK(c.routing.max_replica_lag_ms == 800);
  CHECK(c.routing.ryw_wait_ms == 20);
  CHECK(c.routing.read_deadline_ms == 750);
  CHECK(c.routing.unknown_functions == "replica");
  CHECK(c.routing.read_only_functions == std::vector<std::string>{"report_total", "public.lookup"});
  CHECK(c.routing.write_functions == std::vector<std::string>{"bump_counter"});
  CHECK(c.routing.statement_cache_size == 123);
  CHECK(c.routing.classify_max_bytes == 4096);
  CHECK(c.routing.classify_max_depth == 50);

  CHECK(c.health.interval_ms == 200);
  CHECK(c.health.timeout_ms == 900);
  CHECK(c.health.failures_to_down == 4);
  CHECK(c.health.successes_to_up == 5);
  CHECK(c.health.recover_hold_s == 7);
  CHECK(c.failover.write_wait_ms == 3000);

  REQUIRE(c.nodes.size() == 2);
  CHECK(c.nodes[0].name == "eu1");
  CHECK(c.nodes[0].region == "eu");
  CHECK(c.nodes[0].host == "10.0.0.1");
  CHECK(c.nodes[0].port == 5433);
  CHECK(c.nodes[1].name == "us1");
  CHECK(c.nodes[1].region == "us");
  CHECK(c.nodes[1].host == "db.us.example");
  CHECK(c.nodes[1].port == 5432);

  CHECK(c.log.level == "debug");
  CHECK(c.log.format == "json");

  REQUIRE(c.FindUser("legacy") != nullptr);
  CHECK(c.FindUser("legacy")->auth == AuthMethod::kMd5);
  CHECK(c.FindUser("nobody") == nullptr);
  CHECK(c.FindUser("") == nullptr);
}

TEST_CASE("config: defaults apply when only users and nodes are given") {
  auto loaded = Load(kUserAndNode);
  REQUIRE_MESSAGE(loaded.ok(), loaded.status().ToString());
  const Config& c = **loaded;
  const Config defaults;
  CHECK(c.proxy.listen.host == "127.0.0.1");
  CHECK(c.proxy.listen.port == 6432);
  CHECK(c.proxy.region == defaults.proxy.region);
  CHECK(c.proxy.max_client_connections == defaults.proxy.max_client_connections);
  CHECK(c.proxy.max_message_bytes == (64u << 20));
  CHECK(c.proxy.client_login_timeout_ms == defaults.proxy.client_login_timeout_ms);
  CHECK(c.proxy.shutdown_timeout_s == defaults.proxy.shutdown_timeout_s);
  CHECK_FALSE(c.admin.enabled);
  CHECK(c.admin.listen.port == 9187);
  CHECK(c.tls.mode == TlsMode::kDisable);
  CHECK(c.server_tls.mode == ServerTlsMode::kDisable);
  CHECK(c.pool.mode == PoolMode::kTransaction);
  CHECK(c.pool.size == defaults.pool.size);
  CHECK(c.pool.min_idle == 0);
  CHECK(c.routing.consistency == "causal");
  CHECK(c.routing.unknown_functions == "primary");
  CHECK(c.routing.read_only_functions.empty());
  CHECK(c.routing.statement_cache_size == defaults.routing.statement_cache_size);
  CHECK(c.routing.read_deadline_ms == 0);  // off unless asked for
  CHECK(c.routing.classify_max_bytes == 64 * 1024);
  CHECK(c.routing.classify_max_depth == 1000);
  CHECK(c.health.interval_ms == 500);
  CHECK(c.health.failures_to_down == 3);
  CHECK(c.health.successes_to_up == 3);
  CHECK(c.failover.write_wait_ms == defaults.failover.write_wait_ms);
  CHECK(c.log.level == "info");
  CHECK(c.log.format == "logfmt");
  REQUIRE(c.users.size() == 1);
  CHECK(c.users[0].auth == AuthMethod::kScramSha256);
  CHECK(c.users[0].server_user == "app");
  CHECK(c.users[0].server_password == "secret");
  CHECK_FALSE(c.users[0].admin);
  REQUIRE(c.nodes.size() == 1);
  CHECK(c.nodes[0].port == 5432);
}

TEST_CASE("config: session defaults per user and per database") {
  auto loaded = Load(R"(
[routing]
route = "replica"
consistency = "bounded"

[[users]]
name = "app"
password = "secret"

[[users]]
name = "reporting"
password = "secret"
route = "auto"
consistency = "eventual"

[[databases]]
name = "ledger"
route = "primary"
consistency = "strong"

[[databases]]
name = "analytics"

[[nodes]]
name = "n1"
region = "r1"
host = "127.0.0.1"
)");
  REQUIRE_MESSAGE(loaded.ok(), loaded.status().ToString());
  const Config& c = **loaded;
  const UserConfig* app = c.FindUser("app");
  const UserConfig* reporting = c.FindUser("reporting");
  REQUIRE(app != nullptr);
  REQUIRE(reporting != nullptr);
  CHECK(c.DefaultRoute(app, "appdb") == "replica");  // [routing]
  CHECK(c.DefaultConsistency(app, "appdb") == "bounded");
  CHECK(c.DefaultRoute(app, "ledger") == "primary");  // the database's
  CHECK(c.DefaultConsistency(app, "ledger") == "strong");
  CHECK(c.DefaultRoute(app, "analytics") == "replica");  // listed without defaults
  CHECK(c.DefaultRoute(reporting, "ledger") == "auto");  // the user's beat the database's
  CHECK(c.DefaultConsistency(reporting, "ledger") == "eventual");
  CHECK(c.FindDatabase("nope") == nullptr);

  auto bad = Load(std::string("[[databases]]\nname = \"x\"\nroute = \"sideways\"\n") +
                  std::string(kUserAndNode));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("databases[0].route") != std::string_view::npos);
  auto dup = Load(std::string("[[databases]]\nname = \"x\"\n[[databases]]\nname = \"x\"\n") +
                  std::string(kUserAndNode));
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.status().message().find("duplicate name") != std::string_view::npos);
}

TEST_CASE("config: [admin] without listen stays disabled") {
  auto loaded = Load(std::string("[admin]\nbearer_token = \"t\"\n") + std::string(kUserAndNode));
  REQUIRE(loaded.ok());
  CHECK_FALSE((*loaded)->admin.enabled);
}

TEST_CASE("config: unknown keys and sections") {
  SUBCASE("top-level key") {
    std::string m = LoadError(std::string("verbose = true\n") + std::string(kUserAndNode));
    CheckNames(m, 1, "verbose");
    CHECK(Contains(m, "unknown key"));
  }
  SUBCASE("top-level section") {
    std::string m =
        LoadError(std::string("\n[prxy]\nlisten = \"1.2.3.4:5\"\n") + std::string(kUserAndNode));
    CheckNames(m, 2, "prxy");
    CHECK(Contains(m, "unknown section"));
  }
  SUBCASE("key in a section") {
    std::string m =
        LoadError(std::string("[pool]\nsize = 5\nsise = 6\n") + std::string(kUserAndNode));
    CheckNames(m, 3, "pool.sise");
    CHECK(Contains(m, "unknown key"));
    CHECK(Contains(m, "size"));  // lists the valid keys
  }
  SUBCASE("key in an array-of-tables element") {
    std::string m = LoadError(std::string(kUserAndNode) +
                              "\n[[nodes]]\nname = \"n2\"\nregion = \"r2\"\nhost = \"h\"\n"
                              "prot = 5433\n");
    // kUserAndNode ends on line 9; "prot" is on line 15.
    CheckNames(m, 15, "nodes[1].prot");
  }
}

TEST_CASE("config: wrong types") {
  SUBCASE("string for an integer") {
    std::string m = LoadError(std::string("[pool]\n\nsize = \"5\"\n") + std::string(kUserAndNode));
    CheckNames(m, 3, "pool.size");
    CHECK(Contains(m, "expected an integer, got a string"));
  }
  SUBCASE("float for an integer") {
    CheckNames(LoadError(std::string("[health]\ninterval_ms = 1.5\n") + std::string(kUserAndNode)),
               2, "health.interval_ms");
  }
  SUBCASE("integer for a string") {
    CheckNames(LoadError(std::string("[proxy]\nregion = 5\n") + std::string(kUserAndNode)), 2,
               "proxy.region");
  }
  SUBCASE("string for a bool") {
    std::string m = LoadError(
        "[[users]]\nname = \"a\"\npassword = \"p\"\nadmin = \"yes\"\n"
        "[[nodes]]\nname = \"n\"\nregion = \"r\"\nhost = \"h\"\n");
    CheckNames(m, 4, "users[0].admin");
  }
  SUBCASE("a section that is a value") {
    CheckNames(LoadError(std::string("pool = 5\n") + std::string(kUserAndNode)), 1, "pool");
  }
  SUBCASE("nodes as a plain table") {
    std::string m = LoadError("[[users]]\nname = \"a\"\npassword = \"p\"\n[nodes]\nname = \"n\"\n");
    CheckNames(m, 4, "nodes");
    CHECK(Contains(m, "array of tables"));
  }
  SUBCASE("array element of the wrong type") {
    std::string m = LoadError(std::string("[routing]\nwrite_functions = [\"a\", 3]\n") +
                              std::string(kUserAndNode));
    CheckNames(m, 2, "routing.write_functions[1]");
  }
}

TEST_CASE("config: out-of-range values") {
  SUBCASE("zero pool size") {
    std::string m = LoadError(std::string("[pool]\nsize = 0\n") + std::string(kUserAndNode));
    CheckNames(m, 2, "pool.size");
    CHECK(Contains(m, "got 0"));
  }
  SUBCASE("negative") {
    CheckNames(
        LoadError(std::string("[failover]\nwrite_wait_ms = -1\n") + std::string(kUserAndNode)), 2,
        "failover.write_wait_ms");
  }
  SUBCASE("does not fit uint32") {
    CheckNames(
        LoadError(std::string("[routing]\nryw_wait_ms = 4294967296\n") + std::string(kUserAndNode)),
        2, "routing.ryw_wait_ms");
  }
  SUBCASE("uint32 max fits") {
    auto loaded =
        Load(std::string("[routing]\nryw_wait_ms = 4294967295\n") + std::string(kUserAndNode));
    REQUIRE(loaded.ok());
    CHECK((*loaded)->routing.ryw_wait_ms == 4294967295u);
  }
  SUBCASE("node port") {
    std::string m = LoadError(
        "[[users]]\nname = \"a\"\npassword = \"p\"\n"
        "[[nodes]]\nname = \"n\"\nregion = \"r\"\nhost = \"h\"\nport = 70000\n");
    CheckNames(m, 8, "nodes[0].port");
    CHECK(Contains(m, "65535"));
  }
  SUBCASE("node port zero") {
    CheckNames(LoadError("[[users]]\nname = \"a\"\npassword = \"p\"\n"
                         "[[nodes]]\nname = \"n\"\nregion = \"r\"\nhost = \"h\"\nport = 0\n"),
               8, "nodes[0].port");
  }
  SUBCASE("min_idle above size") {
    std::string m =
        LoadError(std::string("[pool]\nsize = 2\nmin_idle = 3\n") + std::string(kUserAndNode));
    CheckNames(m, 3, "pool.min_idle");
  }
  SUBCASE("tiny max_message_bytes") {
    CheckNames(
        LoadError(std::string("[proxy]\nmax_message_bytes = 10\n") + std::string(kUserAndNode)), 2,
        "proxy.max_message_bytes");
  }
}

TEST_CASE("config: bad enum values") {
  struct Case {
    const char* text;
    const char* key;
  };
  for (const Case& c :
       {Case{"[pool]\nmode = \"statement\"\n", "pool.mode"},
        Case{"[tls]\nmode = \"prefer\"\n", "tls.mode"},
        Case{"[server_tls]\nmode = \"allow\"\n", "server_tls.mode"},
        Case{"[routing]\nconsistency = \"linear\"\n", "routing.consistency"},
        Case{"[routing]\nunknown_functions = \"any\"\n", "routing.unknown_functions"},
        Case{"[log]\nlevel = \"trace\"\n", "log.level"},
        Case{"[log]\nformat = \"xml\"\n", "log.format"}}) {
    std::string m = LoadError(std::string(c.text) + std::string(kUserAndNode));
    CheckNames(m, 2, c.key);
    CHECK(Contains(m, "must be one of"));
  }
  std::string m = LoadError(
      "[[users]]\nname = \"a\"\npassword = \"p\"\nauth = \"password\"\n"
      "[[nodes]]\nname = \"n\"\nregion = \"r\"\nhost = \"h\"\n");
  CheckNames(m, 4, "users[0].auth");
  CHECK(Contains(m, "\"scram-sha-256\", \"md5\", \"trust\""));
}

TEST_CASE("config: duplicates") {
  SUBCASE("node name") {
    std::string m = LoadError(std::string(kUserAndNode) +
                              "[[nodes]]\nname = \"n1\"\nregion = \"r2\"\nhost = \"h2\"\n");
    CheckNames(m, 11, "nodes[1].name");
    CHECK(Contains(m, "duplicate name \"n1\" (first defined on line 7)"));
  }
  SUBCASE("user name") {
    std::string m =
        LoadError(std::string(kUserAndNode) + "[[users]]\nname = \"app\"\n" + "password = \"x\"\n");
    CheckNames(m, 11, "users[1].name");
  }
  SUBCASE("node host and port") {
    std::string m = LoadError(std::string(kUserAndNode) +
                              "[[nodes]]\nname = \"n2\"\nregion = \"r2\"\nhost = \"127.0.0.1\"\n");
    CheckNames(m, 10, "nodes[1]");
    CHECK(Contains(m, "same host and port as nodes[0]"));
  }
  SUBCASE("a TOML key given twice is a syntax error with its line") {
    std::string m =
        LoadError(std::string("[pool]\nsize = 1\nsize = 2\n") + std::string(kUserAndNode));
    CHECK(Contains(m, "test.toml:3:"));
  }
  SUBCASE("function in both lists") {
    CheckNames(LoadError(std::string("[routing]\nread_only_functions = [\"f\"]\n"
                                     "write_functions = [\"f\"]\n") +
                         std::string(kUserAndNode)),
               3, "routing.write_functions");
  }
}

TEST_CASE("config: missing required values") {
  SUBCASE("node host") {
    std::string m = LoadError(
        "[[users]]\nname = \"a\"\npassword = \"p\"\n\n"
        "[[nodes]]\nname = \"n\"\nregion = \"r\"\n");
    CheckNames(m, 5, "nodes[0].host");
    CHECK(Contains(m, "missing required key"));
  }
  SUBCASE("empty node region") {
    CheckNames(LoadError("[[users]]\nname = \"a\"\npassword = \"p\"\n"
                         "[[nodes]]\nname = \"n\"\nregion = \"\"\nhost = \"h\"\n"),
               6, "nodes[0].region");
  }
  SUBCASE("user name") {
    std::string m = LoadError(
        "[[users]]\npassword = \"p\"\n"
        "[[nodes]]\nname = \"n\"\nregion = \"r\"\nhost = \"h\"\n");
    CheckNames(m, 1, "users[0].name");
  }
  SUBCASE("no nodes") {
    std::string m = LoadError("[[users]]\nname = \"a\"\npassword = \"p\"\n");
    CHECK(Contains(m, "test.toml: nodes: at least one [[nodes]] entry is required"));
  }
  SUBCASE("no users") {
    std::string m = LoadError("[[nodes]]\nname = \"n\"\nregion = \"r\"\nhost = \"h\"\n");
    CHECK(Contains(m, "test.toml: users: at least one [[users]] entry is required"));
  }
  SUBCASE("empty file") {
    std::string m = LoadError("");
    CHECK(Contains(m, "users"));
    CHECK(Contains(m, "nodes"));
  }
  SUBCASE("tls cert for require") {
    std::string m = LoadError(std::string("[tls]\nmode = \"require\"\nkey_file = \"k\"\n") +
                              std::string(kUserAndNode));
    CheckNames(m, 1, "tls.cert_file");
  }
  SUBCASE("server_tls ca for verify-full") {
    CheckNames(LoadError(std::string("\n[server_tls]\nmode = \"verify-full\"\n") +
                         std::string(kUserAndNode)),
               2, "server_tls.ca_file");
  }
}

TEST_CASE("config: passwords and auth methods") {
  auto with_user = [](std::string_view user) {
    return std::string(user) + "[[nodes]]\nname = \"n\"\nregion = \"r\"\nhost = \"h\"\n";
  };
  SUBCASE("scram needs a password") {
    CheckNames(LoadError(with_user("[[users]]\nname = \"a\"\n")), 1, "users[0].password");
  }
  SUBCASE("md5 needs a password") {
    CheckNames(LoadError(with_user("[[users]]\nname = \"a\"\nauth = \"md5\"\npassword = \"\"\n")),
               4, "users[0].password");
  }
  SUBCASE("scram with an md5 hash") {
    CheckNames(LoadError(with_user("[[users]]\nname = \"a\"\n"
                                   "password = \"md5d41d8cd98f00b204e9800998ecf8427e\"\n")),
               3, "users[0].password");
  }
  SUBCASE("md5 with a SCRAM verifier") {
    CheckNames(LoadError(with_user("[[users]]\nname = \"a\"\nauth = \"md5\"\n"
                                   "password = \"SCRAM-SHA-256$4096:s$a:b\"\n")),
               4, "users[0].password");
  }
  SUBCASE("server_password cannot be a SCRAM verifier") {
    CheckNames(LoadError(with_user("[[users]]\nname = \"a\"\npassword = \"p\"\n"
                                   "server_password = \"SCRAM-SHA-256$4096:s$a:b\"\n")),
               4, "users[0].server_password");
  }
  SUBCASE("server_password may be an md5 hash") {
    auto loaded =
        Load(with_user("[[users]]\nname = \"a\"\npassword = \"p\"\n"
                       "server_password = \"md5d41d8cd98f00b204e9800998ecf8427e\"\n"));
    REQUIRE_MESSAGE(loaded.ok(), loaded.status().ToString());
    CHECK((*loaded)->users[0].server_password == "md5d41d8cd98f00b204e9800998ecf8427e");
  }
  SUBCASE("md5 with plaintext; md5-looking text that is not a hash is plaintext") {
    auto loaded =
        Load(with_user("[[users]]\nname = \"a\"\nauth = \"md5\"\npassword = \"md5xyz\"\n"));
    REQUIRE_MESSAGE(loaded.ok(), loaded.status().ToString());
    CHECK((*loaded)->users[0].server_password == "md5xyz");
  }
  SUBCASE("trust with a password keeps it for the backend") {
    auto loaded = Load(with_user("[[users]]\nname = \"a\"\nauth = \"trust\"\npassword = \"pw\"\n"));
    REQUIRE(loaded.ok());
    CHECK((*loaded)->users[0].server_password == "pw");
  }
  SUBCASE("verifier without server_password is allowed") {
    auto loaded =
        Load(with_user("[[users]]\nname = \"a\"\npassword = \"SCRAM-SHA-256$4096:s$a:b\"\n"));
    REQUIRE(loaded.ok());
    CHECK((*loaded)->users[0].server_password.empty());
  }
}

TEST_CASE("config: several errors are all reported, in line order") {
  std::string m = LoadError(std::string("[pool]\nsize = 0\n[log]\nlevel = \"loud\"\nx = 1\n") +
                            std::string(kUserAndNode));
  CheckNames(m, 2, "pool.size");
  CheckNames(m, 4, "log.level");
  CheckNames(m, 5, "log.x");
  CHECK(m.find("pool.size") < m.find("log.level"));
  CHECK(m.find("log.level") < m.find("log.x"));
}

TEST_CASE("config: TOML syntax errors name the file and line") {
  std::string m = LoadError("[proxy]\nregion = \"eu\n");
  CHECK(Contains(m, "test.toml:2:"));
}

TEST_CASE("config: listen addresses") {
  SUBCASE("ipv4") {
    auto a = ParseListenAddress("10.1.2.3:5432");
    REQUIRE(a.ok());
    CHECK(a->host == "10.1.2.3");
    CHECK(a->port == 5432);
    CHECK(FormatListenAddress(*a) == "10.1.2.3:5432");
  }
  SUBCASE("ipv6 in brackets") {
    auto a = ParseListenAddress("[::1]:6432");
    REQUIRE(a.ok());
    CHECK(a->host == "::1");
    CHECK(a->port == 6432);
    CHECK(FormatListenAddress(*a) == "[::1]:6432");
    auto any = ParseListenAddress("[::]:1");
    REQUIRE(any.ok());
    CHECK(any->host == "::");
    CHECK(any->port == 1);
  }
  SUBCASE("bad") {
    for (const char* text :
         {"127.0.0.1", "127.0.0.1:", ":6432", "[::1]", "[::1]6432", "[::1:6432", "::1:6432",
          "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:64x", "127.0.0.1:-1", "127.0.0.1: 80",
          "localhost:6432", "[127.0.0.1]:80", "", "1.2.3:80"}) {
      INFO(text);
      CHECK_FALSE(ParseListenAddress(text).ok());
    }
    CHECK(
        Contains(std::string(ParseListenAddress("127.0.0.1").status().message()), "missing port"));
    CHECK(Contains(std::string(ParseListenAddress("1.2.3.4:99999").status().message()), "port"));
  }
  SUBCASE("in a config, the error names key and line") {
    std::string m =
        LoadError(std::string("[proxy]\nlisten = \"127.0.0.1\"\n") + std::string(kUserAndNode));
    CheckNames(m, 2, "proxy.listen");
    CHECK(Contains(m, "missing port"));
    CheckNames(
        LoadError(std::string("[admin]\nlisten = \"[::1]:0\"\n") + std::string(kUserAndNode)), 2,
        "admin.listen");
  }
}

TEST_CASE("config: files") {
  auto missing = LoadConfigFile("/nonexistent/pgregion.toml");
  REQUIRE_FALSE(missing.ok());
  CHECK(Contains(std::string(missing.status().message()), "/nonexistent/pgregion.toml"));

  auto directory = LoadConfigFile("/");
  CHECK_FALSE(directory.ok());
}

// The build may define PGREGION_SOURCE_ROOT; otherwise tests run from the
// repository root or a build directory below it.
TEST_CASE("config: conf/pgregion.toml loads") {
  std::vector<std::string> paths = {"conf/pgregion.toml", "../conf/pgregion.toml",
                                    "../../conf/pgregion.toml"};
#ifdef PGREGION_SOURCE_ROOT
  paths.insert(paths.begin(), std::string(PGREGION_SOURCE_ROOT) + "/conf/pgregion.toml");
#endif
  absl::StatusOr<std::shared_ptr<const Config>> loaded = absl::NotFoundError("not tried");
  for (const std::string& path : paths) {
    loaded = LoadConfigFile(path);
    if (loaded.ok() || loaded.status().code() != absl::StatusCode::kNotFound) break;
  }
  REQUIRE_MESSAGE(loaded.ok(), loaded.status().ToString());
  const Config& c = **loaded;
  CHECK(FormatListenAddress(c.proxy.listen) == "127.0.0.1:6432");
  CHECK(c.proxy.region == "local");
  REQUIRE(c.nodes.size() == 1);
  CHECK(c.nodes[0].name == "local");
  CHECK(c.nodes[0].region == "local");
  CHECK(c.nodes[0].host == "127.0.0.1");
  CHECK(c.nodes[0].port == 5432);
  const UserConfig* app = c.FindUser("app");
  REQUIRE(app != nullptr);
  CHECK(app->auth == AuthMethod::kScramSha256);
  CHECK(app->password == "secret");
  CHECK(c.pool.mode == PoolMode::kTransaction);
}

TEST_CASE("config: conf/three-region.toml loads") {
  std::vector<std::string> paths = {"conf/three-region.toml", "../conf/three-region.toml",
                                    "../../conf/three-region.toml"};
#ifdef PGREGION_SOURCE_ROOT
  paths.insert(paths.begin(), std::string(PGREGION_SOURCE_ROOT) + "/conf/three-region.toml");
#endif
  absl::StatusOr<std::shared_ptr<const Config>> loaded = absl::NotFoundError("not tried");
  for (const std::string& path : paths) {
    loaded = LoadConfigFile(path);
    if (loaded.ok() || loaded.status().code() != absl::StatusCode::kNotFound) break;
  }
  REQUIRE_MESSAGE(loaded.ok(), loaded.status().ToString());
  const Config& c = **loaded;
  CHECK(c.proxy.region == "eu-west");
  REQUIRE(c.nodes.size() == 3);
  // scripts/quickstart.sh runs this file with its relays on these ports.
  CHECK(c.nodes[0].region == "us-east");
  CHECK(c.nodes[0].port == 6501);
  CHECK(c.nodes[1].region == "eu-west");
  CHECK(c.nodes[1].port == 6502);
  CHECK(c.nodes[2].region == "ap-south");
  CHECK(c.nodes[2].port == 6503);
  CHECK(c.routing.max_replica_lag_ms == 2000);
}

}  // namespace
}  // namespace pgregion::proxy

namespace pgregion::proxy {
namespace {

TEST_CASE("config: admission keys (pre-auth budget, startup timeout, auth failure delay)") {
  const Config defaults;
  CHECK(defaults.proxy.max_unauthenticated_connections == 200);
  CHECK(defaults.proxy.startup_packet_timeout_ms == 5000);
  CHECK(defaults.proxy.auth_failure_delay_ms == 300);
  auto loaded = Load(std::string(R"([proxy]
max_unauthenticated_connections = 7
startup_packet_timeout_ms = 1500
auth_failure_delay_ms = 0
)") + std::string(kUserAndNode));
  REQUIRE_MESSAGE(loaded.ok(), loaded.status().ToString());
  CHECK((*loaded)->proxy.max_unauthenticated_connections == 7);
  CHECK((*loaded)->proxy.startup_packet_timeout_ms == 1500);
  CHECK((*loaded)->proxy.auth_failure_delay_ms == 0);
  CHECK(Contains(LoadError(std::string("[proxy]\nmax_unauthenticated_connections = 0\n") +
                           std::string(kUserAndNode)),
                 "max_unauthenticated_connections"));
  CHECK(Contains(LoadError(std::string("[proxy]\nstartup_packet_timeout_ms = 0\n") +
                           std::string(kUserAndNode)),
                 "startup_packet_timeout_ms"));
  CHECK(Contains(
      LoadError(std::string("[proxy]\nauth_failure_delay_ms = -1\n") + std::string(kUserAndNode)),
      "auth_failure_delay_ms"));
}

}  // namespace
}  // namespace pgregion::proxy
