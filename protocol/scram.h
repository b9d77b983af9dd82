// SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL uses it, both sides.
//
// ScramServer authenticates a client against a stored verifier (optionally with
// tls-server-end-point channel binding, SCRAM-SHA-256-PLUS); ScramClient
// authenticates the proxy to a backend. Randomness (nonces, salts) is passed in
// so the math is deterministic and testable. Pure; OpenSSL crypto only.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pgregion::protocol {

inline constexpr char kScramSha256[] = "SCRAM-SHA-256";
inline constexpr char kScramSha256Plus[] = "SCRAM-SHA-256-PLUS";
inline constexpr int kDefaultScramIterations = 4096;
// Highest iteration count ScramClient accepts from a backend. PBKDF2 runs on the
// calling thread, so a hostile or misconfigured server could otherwise stall it
// for minutes (i=2147483647). 1,000,000 costs about 0.25 s of CPU, covers
// OWASP's 600,000 recommendation and is 244x PostgreSQL's default of 4096.
inline constexpr int kMaxScramIterations = 1'000'000;

// The stored form: SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>
struct ScramVerifier {
  int iterations = kDefaultScramIterations;
  std::string salt;        // raw bytes
  std::string stored_key;  // raw 32 bytes
  std::string server_key;  // raw 32 bytes

  std::string ToString() const;
};

[[nodiscard]] absl::StatusOr<ScramVerifier> ParseScramVerifier(std::string_view text);
// Derives a verifier from a plaintext password (no SASLprep beyond ASCII: the
// password is used as given, as PostgreSQL does when SASLprep fails). If the
// derivation fails (iterations < 1, crypto error) the keys are left empty, which
// ParseScramVerifier and ScramServer reject.
ScramVerifier MakeScramVerifier(std::string_view password, std::string_view salt, int iterations);
bool LooksLikeScramVerifier(std::string_view text);

std::string Base64Encode(std::string_view raw);
[[nodiscard]] absl::StatusOr<std::string> Base64Decode(std::string_view b64);

// Hash of a DER certificate for tls-server-end-point (RFC 5929): SHA-256 for
// certificates signed with MD5/SHA-1/SHA-256, else the signature's hash. The
// caller computes it with OpenSSL and passes the bytes in; this helper does the
// SHA-256 case from DER bytes.
std::string Sha256(std::string_view data);

// `n` random printable characters (OpenSSL's RAND_bytes) for a SCRAM nonce.
std::string ScramNonce(size_t n);

// Errors from both classes: InvalidArgument = malformed message, bad channel
// binding or nonce (PostgreSQL answers 08P01); Unauthenticated = wrong password or
// server signature (28P01); FailedPrecondition = call out of order; Internal =
// unusable verifier, nonce or crypto failure.

// Server side. One instance per authentication exchange.
class ScramServer {
 public:
  // `server_nonce`: random printable bytes (no ','); `cert_hash`: the
  // tls-server-end-point hash of the proxy's certificate, empty without TLS.
  ScramServer(ScramVerifier verifier, std::string server_nonce, std::string cert_hash);

  // Handles SASLInitialResponse. Returns server-first-message.
  [[nodiscard]] absl::StatusOr<std::string> HandleClientFirst(std::string_view mechanism,
                                                              std::string_view client_first);
  // Handles SASLResponse. Returns server-final-message ("v=..."). An error
  // status means authentication failed (wrong password, bad binding, malformed).
  [[nodiscard]] absl::StatusOr<std::string> HandleClientFinal(std::string_view client_final);

 private:
  ScramVerifier verifier_;
  std::string server_nonce_;
  std::string cert_hash_;
  std::string mechanism_;
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;  // client nonce + server nonce
  bool first_done_ = false;
};

// Client side, for backends.
class ScramClient {
 public:
  // `client_nonce`: random printable bytes (no ',').
  ScramClient(std::string password, std::string client_nonce);

  // client-first-message for SASLInitialResponse ("n,,n=,r=<nonce>").
  std::string ClientFirst();
  // Handles AuthenticationSASLContinue; returns client-final-message.
  [[nodiscard]] absl::StatusOr<std::string> HandleServerFirst(std::string_view server_first);
  // Handles AuthenticationSASLFinal: verifies the server signature.
  [[nodiscard]] absl::Status HandleServerFinal(std::string_view server_final);

 private:
  std::string password_;
  std::string client_nonce_;
  std::string client_first_bare_;
  std::string server_signature_;  // expected, raw
};

}  // namespace pgregion::protocol
