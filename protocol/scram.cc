#include "protocol/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <climits>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pgregion::protocol {
namespace {

constexpr size_t kKeyLen = 32;  // SHA-256 output size, and so every SCRAM key.
constexpr std::string_view kVerifierPrefix = "SCRAM-SHA-256$";
constexpr std::string_view kTlsServerEndPoint = "tls-server-end-point";
// Longest piece of a server's "e=" text copied into a status message.
constexpr size_t kMaxServerErrorText = 128;

// Debian's abseil has its own absl::string_view, so absl::StrCat/StrSplit do not
// take std::string_view; these two small helpers stand in for them.
template <typename... Parts>
std::string Cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) break;
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  out.push_back(s.substr(start));
  return out;
}

// Overwrites key material before the string is freed. Copies made on the way
// may survive; this only shortens the window.
void Cleanse(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

// Returns an empty string if OpenSSL fails; every caller treats empty as an error
// or lets it fail a comparison.
std::string Hmac(std::string_view key, std::string_view data) {
  if (key.size() > INT_MAX) return "";
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
           &out_len) == nullptr ||
      out_len != kKeyLen) {
    return "";
  }
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

std::string Pbkdf2(std::string_view password, std::string_view salt, int iterations) {
  if (iterations < 1 || password.size() > INT_MAX || salt.size() > INT_MAX) return "";
  std::string out(kKeyLen, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), iterations, EVP_sha256(), kKeyLen,
                        reinterpret_cast<unsigned char*>(out.data())) != 1) {
    return "";
  }
  return out;
}

std::string Xor(std::string_view a, std::string_view b) {
  std::string out(a.size(), '\0');
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) out[i] = static_cast<char>(a[i] ^ b[i]);
  return out;
}

// RFC 5802 "printable": 0x21-0x7E except ','.
bool IsScramPrintable(std::string_view s) {
  for (char c : s) {
    if (c < 0x21 || c > 0x7E || c == ',') return false;
  }
  return true;
}

// Strict decimal: digits only, no sign or spaces, 1..max.
bool ParseCount(std::string_view s, int max, int* out) {
  if (s.empty() || s.size() > 10) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < 1 || v > max) return false;
  *out = static_cast<int>(v);
  return true;
}

// One "<letter>=<value>" attribute of a comma-separated SCRAM message.
struct Attribute {
  char name = 0;
  std::string_view value;
};

bool ParseAttribute(std::string_view part, Attribute* out) {
  if (part.size() < 2 || part[1] != '=') return false;
  char c = part[0];
  if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
  out->name = c;
  out->value = part.substr(2);
  return true;
}

absl::StatusOr<std::string_view> ExpectAttribute(std::string_view part, char name) {
  Attribute attr;
  if (!ParseAttribute(part, &attr) || attr.name != name) {
    return absl::InvalidArgumentError(
        Cat("malformed SCRAM message: expected attribute \"", std::string(1, name), "\""));
  }
  return attr.value;
}

// Messages arrive as length-prefixed bytes; PostgreSQL reads them as C strings,
// so an embedded NUL is malformed there and here.
absl::Status CheckNoNul(std::string_view msg) {
  if (msg.empty()) return absl::InvalidArgumentError("malformed SCRAM message: empty");
  if (msg.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("malformed SCRAM message: NUL byte");
  }
  return absl::OkStatus();
}

// Keys derived from a password, as RFC 5802 section 3 names them.
struct ScramKeys {
  std::string client_key;
  std::string stored_key;
  std::string server_key;
};

ScramKeys DeriveKeys(std::string_view password, std::string_view salt, int iterations) {
  ScramKeys keys;
  std::string salted = Pbkdf2(password, salt, iterations);
  if (salted.empty()) return keys;
  keys.client_key = Hmac(salted, "Client Key");
  keys.server_key = Hmac(salted, "Server Key");
  if (!keys.client_key.empty()) keys.stored_key = Sha256(keys.client_key);
  Cleanse(salted);
  return keys;
}

absl::Status CheckVerifier(const ScramVerifier& v) {
  if (v.iterations < 1 || v.salt.empty() || v.stored_key.size() != kKeyLen ||
      v.server_key.size() != kKeyLen) {
    return absl::InternalError("unusable SCRAM verifier");
  }
  return absl::OkStatus();
}

constexpr char kB64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int B64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::string Base64Encode(std::string_view raw) {
  std::string out;
  out.reserve((raw.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= raw.size(); i += 3) {
    uint32_t n = (uint32_t{static_cast<unsigned char>(raw[i])} << 16) |
                 (uint32_t{static_cast<unsigned char>(raw[i + 1])} << 8) |
                 uint32_t{static_cast<unsigned char>(raw[i + 2])};
    out += kB64Alphabet[(n >> 18) & 63];
    out += kB64Alphabet[(n >> 12) & 63];
    out += kB64Alphabet[(n >> 6) & 63];
    out += kB64Alphabet[n & 63];
  }
  size_t rest = raw.size() - i;
  if (rest > 0) {
    uint32_t n = uint32_t{static_cast<unsigned char>(raw[i])} << 16;
    if (rest == 2) n |= uint32_t{static_cast<unsigned char>(raw[i + 1])} << 8;
    out += kB64Alphabet[(n >> 18) & 63];
    out += kB64Alphabet[(n >> 12) & 63];
    out += rest == 2 ? kB64Alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Strict: the length is a multiple of 4, '=' only as one or two final pad
// characters, no whitespace, and the unused bits before padding are zero, so
// every byte string has exactly one accepted encoding.
absl::StatusOr<std::string> Base64Decode(std::string_view b64) {
  if (b64.size() % 4 != 0) return absl::InvalidArgumentError("invalid base64 length");
  size_t pad = 0;
  if (!b64.empty() && b64.back() == '=')
    pad = b64.size() >= 2 && b64[b64.size() - 2] == '=' ? 2 : 1;
  std::string out;
  out.reserve(b64.size() / 4 * 3);
  for (size_t i = 0; i < b64.size(); i += 4) {
    bool last = i + 4 == b64.size();
    size_t data_chars = last ? 4 - pad : 4;
    uint32_t n = 0;
    for (size_t j = 0; j < 4; ++j) {
      int v = j < data_chars ? B64Value(b64[i + j]) : 0;
      if (v < 0) return absl::InvalidArgumentError("invalid base64 character");
      n = (n << 6) | static_cast<uint32_t>(v);
    }
    out += static_cast<char>((n >> 16) & 0xFF);
    if (data_chars >= 3) out += static_cast<char>((n >> 8) & 0xFF);
    if (data_chars == 4) out += static_cast<char>(n & 0xFF);
    if ((data_chars == 2 && (n & 0xFFFF) != 0) || (data_chars == 3 && (n & 0xFF) != 0)) {
      return absl::InvalidArgumentError("non-canonical base64 padding bits");
    }
  }
  return out;
}

std::string ScramNonce(size_t n) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string raw(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(n));
  for (char& c : raw) c = kAlphabet[static_cast<unsigned char>(c) % 64];
  return raw;
}

std::string Sha256(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &out_len, EVP_sha256(), nullptr) != 1) return "";
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

std::string ScramVerifier::ToString() const {
  return Cat(kVerifierPrefix, std::to_string(iterations), ":", Base64Encode(salt), "$",
             Base64Encode(stored_key), ":", Base64Encode(server_key));
}

absl::StatusOr<ScramVerifier> ParseScramVerifier(std::string_view text) {
  auto invalid = [] { return absl::InvalidArgumentError("malformed SCRAM-SHA-256 verifier"); };
  if (text.substr(0, kVerifierPrefix.size()) != kVerifierPrefix) return invalid();
  text.remove_prefix(kVerifierPrefix.size());
  std::vector<std::string_view> halves = Split(text, '$');
  if (halves.size() != 2) return invalid();
  std::vector<std::string_view> params = Split(halves[0], ':');
  std::vector<std::string_view> keys = Split(halves[1], ':');
  if (params.size() != 2 || keys.size() != 2) return invalid();
  ScramVerifier v;
  if (!ParseCount(params[0], INT_MAX, &v.iterations)) return invalid();
  absl::StatusOr<std::string> salt = Base64Decode(params[1]);
  absl::StatusOr<std::string> stored = Base64Decode(keys[0]);
  absl::StatusOr<std::string> server = Base64Decode(keys[1]);
  if (!salt.ok() || salt->empty() || !stored.ok() || stored->size() != kKeyLen || !server.ok() ||
      server->size() != kKeyLen) {
    return invalid();
  }
  v.salt = *std::move(salt);
  v.stored_key = *std::move(stored);
  v.server_key = *std::move(server);
  return v;
}

ScramVerifier MakeScramVerifier(std::string_view password, std::string_view salt, int iterations) {
  ScramKeys keys = DeriveKeys(password, salt, iterations);
  ScramVerifier v;
  v.iterations = iterations;
  v.salt = std::string(salt);
  v.stored_key = std::move(keys.stored_key);
  v.server_key = std::move(keys.server_key);
  Cleanse(keys.client_key);
  return v;
}

bool LooksLikeScramVerifier(std::string_view text) { return ParseScramVerifier(text).ok(); }

// ---------------------------------------------------------------------------
// ScramServer. State is encoded in the members: first_done_ is set on the first
// HandleClientFirst call (success or not, so a failed exchange cannot restart);
// nonce_ is non-empty only while a client-final-message is expected.

ScramServer::ScramServer(ScramVerifier verifier, std::string server_nonce, std::string cert_hash)
    : verifier_(std::move(verifier)),
      server_nonce_(std::move(server_nonce)),
      cert_hash_(std::move(cert_hash)) {}

absl::StatusOr<std::string> ScramServer::HandleClientFirst(std::string_view mechanism,
                                                           std::string_view client_first) {
  if (first_done_) return absl::FailedPreconditionError("unexpected SCRAM client-first-message");
  first_done_ = true;
  if (absl::Status s = CheckVerifier(verifier_); !s.ok()) return s;
  if (server_nonce_.empty() || !IsScramPrintable(server_nonce_)) {
    return absl::InternalError("invalid SCRAM server nonce");
  }

  bool plus;
  if (mechanism == kScramSha256) {
    plus = false;
  } else if (mechanism == kScramSha256Plus && !cert_hash_.empty()) {
    plus = true;
  } else {
    return absl::InvalidArgumentError("client selected an invalid SASL authentication mechanism");
  }
  if (absl::Status s = CheckNoNul(client_first); !s.ok()) return s;

  // gs2-header = gs2-cbind-flag "," [authzid] ","
  std::vector<std::string_view> parts = Split(client_first, ',');
  if (parts.size() < 3) return absl::InvalidArgumentError("malformed SCRAM client-first-message");
  std::string_view cbind_flag = parts[0];
  if (cbind_flag == "n" || cbind_flag == "y") {
    if (plus) {
      return absl::InvalidArgumentError(
          "client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel "
          "binding data");
    }
    if (cbind_flag == "y" && !cert_hash_.empty()) {
      return absl::InvalidArgumentError(
          "SCRAM channel binding negotiation error: the client supports channel binding but "
          "thinks the server does not, and this server does support it");
    }
  } else if (cbind_flag.substr(0, 2) == "p=") {
    if (!plus) {
      return absl::InvalidArgumentError(
          "client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes "
          "channel binding data");
    }
    if (cbind_flag.substr(2) != kTlsServerEndPoint) {
      return absl::InvalidArgumentError("unsupported SCRAM channel-binding type");
    }
  } else {
    return absl::InvalidArgumentError("unexpected SCRAM channel-binding flag");
  }
  if (!parts[1].empty()) {
    return absl::InvalidArgumentError(parts[1].substr(0, 2) == "a="
                                          ? "SCRAM authorization identity is not supported"
                                          : "malformed SCRAM gs2 header");
  }
  size_t header_len = cbind_flag.size() + 2;

  // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
  if (parts[2].substr(0, 2) == "m=") {
    return absl::InvalidArgumentError("client requires an unsupported SCRAM extension");
  }
  if (absl::StatusOr<std::string_view> user = ExpectAttribute(parts[2], 'n'); !user.ok()) {
    return user.status();  // The user name is ignored: the startup message names the role.
  }
  if (parts.size() < 4) return absl::InvalidArgumentError("malformed SCRAM: nonce missing");
  absl::StatusOr<std::string_view> client_nonce = ExpectAttribute(parts[3], 'r');
  if (!client_nonce.ok()) return client_nonce.status();
  if (client_nonce->empty() || !IsScramPrintable(*client_nonce)) {
    return absl::InvalidArgumentError("invalid SCRAM client nonce");
  }
  for (size_t i = 4; i < parts.size(); ++i) {
    Attribute ext;
    if (!ParseAttribute(parts[i], &ext)) {
      return absl::InvalidArgumentError("malformed SCRAM client-first-message");
    }
  }

  mechanism_ = std::string(mechanism);
  gs2_header_ = std::string(client_first.substr(0, header_len));
  client_first_bare_ = std::string(client_first.substr(header_len));
  nonce_ = Cat(*client_nonce, server_nonce_);
  server_first_ = Cat("r=", nonce_, ",s=", Base64Encode(verifier_.salt),
                      ",i=", std::to_string(verifier_.iterations));
  return server_first_;
}

absl::StatusOr<std::string> ScramServer::HandleClientFinal(std::string_view client_final) {
  if (!first_done_ || nonce_.empty()) {
    return absl::FailedPreconditionError("unexpected SCRAM client-final-message");
  }
  std::string nonce = std::move(nonce_);
  nonce_.clear();  // One attempt only.
  if (absl::Status s = CheckNoNul(client_final); !s.ok()) return s;

  // client-final-message = channel-binding "," nonce ["," extensions] "," proof
  std::vector<std::string_view> parts = Split(client_final, ',');
  if (parts.size() < 3) return absl::InvalidArgumentError("malformed SCRAM client-final-message");

  absl::StatusOr<std::string_view> cbind_b64 = ExpectAttribute(parts[0], 'c');
  if (!cbind_b64.ok()) return cbind_b64.status();
  absl::StatusOr<std::string> cbind = Base64Decode(*cbind_b64);
  if (!cbind.ok()) return absl::InvalidArgumentError("malformed SCRAM channel-binding attribute");
  std::string expected_cbind = gs2_header_;
  if (mechanism_ == kScramSha256Plus) expected_cbind += cert_hash_;
  if (*cbind != expected_cbind) {
    return absl::InvalidArgumentError("SCRAM channel binding check failed");
  }

  absl::StatusOr<std::string_view> final_nonce = ExpectAttribute(parts[1], 'r');
  if (!final_nonce.ok()) return final_nonce.status();
  if (*final_nonce != nonce) return absl::InvalidArgumentError("SCRAM nonce mismatch");

  for (size_t i = 2; i + 1 < parts.size(); ++i) {
    Attribute ext;
    if (!ParseAttribute(parts[i], &ext) || ext.name == 'p') {
      return absl::InvalidArgumentError("malformed SCRAM client-final-message");
    }
  }
  absl::StatusOr<std::string_view> proof_b64 = ExpectAttribute(parts.back(), 'p');
  if (!proof_b64.ok()) return proof_b64.status();
  absl::StatusOr<std::string> proof = Base64Decode(*proof_b64);
  if (!proof.ok() || proof->size() != kKeyLen) {
    return absl::InvalidArgumentError("malformed SCRAM message: invalid client proof");
  }
  std::string_view without_proof =
      client_final.substr(0, client_final.size() - parts.back().size() - 1);

  std::string auth_message = Cat(client_first_bare_, ",", server_first_, ",", without_proof);
  std::string client_signature = Hmac(verifier_.stored_key, auth_message);
  std::string server_signature = Hmac(verifier_.server_key, auth_message);
  if (client_signature.size() != kKeyLen || server_signature.size() != kKeyLen) {
    return absl::InternalError("SCRAM HMAC failed");
  }
  std::string client_key = Xor(*proof, client_signature);
  std::string stored_key = Sha256(client_key);
  Cleanse(client_key);
  if (stored_key.size() != kKeyLen ||
      CRYPTO_memcmp(stored_key.data(), verifier_.stored_key.data(), kKeyLen) != 0) {
    return absl::UnauthenticatedError("SCRAM client proof does not match");
  }
  return Cat("v=", Base64Encode(server_signature));
}

// ---------------------------------------------------------------------------
// ScramClient. client_first_bare_ is non-empty between ClientFirst() and
// HandleServerFirst(); server_signature_ between HandleServerFirst() and
// HandleServerFinal(). Each handler consumes its state, so replays fail.

ScramClient::ScramClient(std::string password, std::string client_nonce)
    : password_(std::move(password)), client_nonce_(std::move(client_nonce)) {}

std::string ScramClient::ClientFirst() {
  client_first_bare_ = Cat("n=,r=", client_nonce_);
  server_signature_.clear();
  return Cat("n,,", client_first_bare_);
}

absl::StatusOr<std::string> ScramClient::HandleServerFirst(std::string_view server_first) {
  if (client_first_bare_.empty() || !server_signature_.empty()) {
    return absl::FailedPreconditionError("unexpected SCRAM server-first-message");
  }
  std::string client_first_bare = std::move(client_first_bare_);
  client_first_bare_.clear();
  if (client_nonce_.empty() || !IsScramPrintable(client_nonce_)) {
    return absl::InternalError("invalid SCRAM client nonce");
  }
  if (absl::Status s = CheckNoNul(server_first); !s.ok()) return s;

  // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
  std::vector<std::string_view> parts = Split(server_first, ',');
  if (parts.size() != 3) return absl::InvalidArgumentError("malformed SCRAM server-first-message");
  absl::StatusOr<std::string_view> nonce = ExpectAttribute(parts[0], 'r');
  if (!nonce.ok()) return nonce.status();
  if (nonce->size() <= client_nonce_.size() ||
      nonce->substr(0, client_nonce_.size()) != client_nonce_ || !IsScramPrintable(*nonce)) {
    return absl::InvalidArgumentError("invalid SCRAM response (nonce mismatch)");
  }
  absl::StatusOr<std::string_view> salt_b64 = ExpectAttribute(parts[1], 's');
  if (!salt_b64.ok()) return salt_b64.status();
  absl::StatusOr<std::string> salt = Base64Decode(*salt_b64);
  if (!salt.ok() || salt->empty()) return absl::InvalidArgumentError("invalid SCRAM salt");
  absl::StatusOr<std::string_view> iter_text = ExpectAttribute(parts[2], 'i');
  if (!iter_text.ok()) return iter_text.status();
  int iterations = 0;
  if (!ParseCount(*iter_text, kMaxScramIterations, &iterations)) {
    return absl::InvalidArgumentError(Cat("invalid SCRAM iteration count (must be 1..",
                                          std::to_string(kMaxScramIterations), ")"));
  }

  ScramKeys keys = DeriveKeys(password_, *salt, iterations);
  if (keys.client_key.size() != kKeyLen || keys.stored_key.size() != kKeyLen ||
      keys.server_key.size() != kKeyLen) {
    Cleanse(keys.client_key);
    return absl::InternalError("SCRAM key derivation failed");
  }
  std::string without_proof = Cat("c=biws,r=", *nonce);
  std::string auth_message = Cat(client_first_bare, ",", server_first, ",", without_proof);
  std::string client_signature = Hmac(keys.stored_key, auth_message);
  std::string server_signature = Hmac(keys.server_key, auth_message);
  std::string proof = Xor(keys.client_key, client_signature);
  Cleanse(keys.client_key);
  if (client_signature.size() != kKeyLen || server_signature.size() != kKeyLen) {
    return absl::InternalError("SCRAM HMAC failed");
  }
  server_signature_ = std::move(server_signature);
  return Cat(without_proof, ",p=", Base64Encode(proof));
}

absl::Status ScramClient::HandleServerFinal(std::string_view server_final) {
  if (server_signature_.empty()) {
    return absl::FailedPreconditionError("unexpected SCRAM server-final-message");
  }
  std::string expected = std::move(server_signature_);
  server_signature_.clear();
  if (absl::Status s = CheckNoNul(server_final); !s.ok()) return s;

  // server-final-message = (server-error / verifier) ["," extensions]
  if (server_final.substr(0, 2) == "e=") {
    std::string text;
    for (char c : server_final.substr(2, kMaxServerErrorText)) {
      text += (c >= 0x20 && c <= 0x7E) ? c : '?';  // The text ends up in logs.
    }
    return absl::UnauthenticatedError(Cat("error received from server in SCRAM exchange: ", text));
  }
  absl::StatusOr<std::string_view> sig_b64 = ExpectAttribute(server_final, 'v');
  if (!sig_b64.ok()) return sig_b64.status();
  absl::StatusOr<std::string> sig = Base64Decode(*sig_b64);
  if (!sig.ok() || sig->size() != kKeyLen) {
    return absl::InvalidArgumentError("malformed SCRAM message (invalid server signature)");
  }
  if (CRYPTO_memcmp(sig->data(), expected.data(), kKeyLen) != 0) {
    return absl::UnauthenticatedError("incorrect server signature");
  }
  return absl::OkStatus();
}

}  // namespace pgregion::protocol
