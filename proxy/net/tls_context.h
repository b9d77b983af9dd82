// OpenSSL contexts: one for client-facing TLS (pgregion's certificate) and one
// for connections to backends (server_tls). Built at startup or reload on the
// loop thread, immutable afterwards, shared by all streams.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace pgregion::proxy {

class TlsContext {
 public:
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Server side: our certificate chain and key. Accepts ALPN "postgresql" (required
  // by clients using direct TLS).
  static absl::StatusOr<std::unique_ptr<TlsContext>> CreateServer(const std::string& cert_file,
                                                                  const std::string& key_file);
  // Client side (towards backends). With `verify`, the chain must verify against
  // `ca_file` and the host name is checked per connection.
  static absl::StatusOr<std::unique_ptr<TlsContext>> CreateClient(const std::string& ca_file,
                                                                  bool verify);

  SSL_CTX* ctx() const { return ctx_; }
  bool verify() const { return verify_; }
  // tls-server-end-point channel binding data of our certificate (server side).
  const std::string& end_point_hash() const { return end_point_hash_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
  bool verify_ = false;
  std::string end_point_hash_;
};

// The last OpenSSL error queue entries as text (clears the queue).
std::string OpenSslErrors();

}  // namespace pgregion::proxy
