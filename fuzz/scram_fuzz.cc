// Fuzz target: protocol/scram.h, both sides.
//
// Modes: (0) ScramServer fed arbitrary client-first / client-final messages;
// (1) ScramClient fed arbitrary server-first / server-final messages;
// (2) a complete exchange between ScramClient and ScramServer built from
// fuzzed password, salt and nonces must succeed, and must fail with
// Unauthenticated when the client uses another password; (3) verifier text and
// base64 parsing, with round trips. Iteration counts are kept small: PBKDF2
// cost is not what is being tested.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "protocol/scram.h"

namespace {

namespace p = pgregion::protocol;
using pgregion::fuzz::Check;

// Nonces are printable ASCII without ',' (RFC 5802).
std::string Nonce(FuzzedDataProvider& fdp) {
  std::string s = fdp.ConsumeRandomLengthString(24);
  for (char& c : s) {
    c = static_cast<char>('!' + static_cast<unsigned char>(c) % 94);
    if (c == ',') c = '.';
  }
  if (s.empty()) s = "n";
  return s;
}

// A server-first message asking for many iterations only makes the input
// slow (the client caps at kMaxScramIterations); skip those.
bool AsksManyIterations(std::string_view server_first) {
  const size_t i = server_first.find("i=");
  if (i == std::string_view::npos) return false;
  size_t digits = 0;
  for (size_t k = i + 2; k < server_first.size() && server_first[k] >= '0' && server_first[k] <= '9'; ++k) {
    ++digits;
  }
  return digits > 4;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  switch (fdp.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: {
      const std::string password = fdp.ConsumeRandomLengthString(16);
      p::ScramServer server(p::MakeScramVerifier(password, "salt", 2), Nonce(fdp),
                            fdp.ConsumeBool() ? std::string(32, 'h') : std::string());
      const std::string mechanism = fdp.ConsumeBool() ? p::kScramSha256 : p::kScramSha256Plus;
      const std::string first = fdp.ConsumeRandomLengthString(256);
      const std::string final_msg = fdp.ConsumeRemainingBytesAsString();
      auto s1 = server.HandleClientFirst(mechanism, first);
      auto s2 = server.HandleClientFinal(final_msg);
      if (!s1.ok()) Check(!s2.ok(), "client-final accepted after a rejected client-first");
      break;
    }
    case 1: {
      p::ScramClient client(fdp.ConsumeRandomLengthString(16), Nonce(fdp));
      (void)client.ClientFirst();
      const std::string first = fdp.ConsumeRandomLengthString(256);
      const std::string final_msg = fdp.ConsumeRemainingBytesAsString();
      if (AsksManyIterations(first)) return -1;
      auto c1 = client.HandleServerFirst(first);
      auto c2 = client.HandleServerFinal(final_msg);
      if (!c1.ok()) Check(!c2.ok(), "server-final accepted after a rejected server-first");
      break;
    }
    case 2: {
      const std::string password = fdp.ConsumeRandomLengthString(32);
      std::string salt = fdp.ConsumeRandomLengthString(16);
      if (salt.empty()) salt = "s";
      const int iterations = fdp.ConsumeIntegralInRange<int>(1, 8);
      const bool wrong = fdp.ConsumeBool();
      const std::string other = password + "x";
      p::ScramServer server(p::MakeScramVerifier(password, salt, iterations), Nonce(fdp), "");
      p::ScramClient client(wrong ? other : password, Nonce(fdp));
      const std::string client_first = client.ClientFirst();
      auto server_first = server.HandleClientFirst(p::kScramSha256, client_first);
      Check(server_first.ok(), "server rejected a valid client-first");
      auto client_final = client.HandleServerFirst(*server_first);
      Check(client_final.ok(), "client rejected a valid server-first");
      auto server_final = server.HandleClientFinal(*client_final);
      if (wrong) {
        Check(!server_final.ok() && absl::IsUnauthenticated(server_final.status()),
              "server accepted a wrong password");
      } else {
        Check(server_final.ok(), "server rejected the right password");
        Check(client.HandleServerFinal(*server_final).ok(), "client rejected a valid server signature");
      }
      break;
    }
    case 3: {
      const std::string text = fdp.ConsumeRemainingBytesAsString();
      if (auto v = p::ParseScramVerifier(text); v.ok()) {
        Check(p::LooksLikeScramVerifier(text), "parsed verifier does not look like one");
        auto again = p::ParseScramVerifier(v->ToString());
        Check(again.ok() && again->iterations == v->iterations && again->salt == v->salt &&
                  again->stored_key == v->stored_key && again->server_key == v->server_key,
              "verifier ToString/Parse round trip");
      }
      auto decoded = p::Base64Decode(p::Base64Encode(text));
      Check(decoded.ok() && *decoded == text, "base64 round trip");
      if (auto d = p::Base64Decode(text); d.ok()) {
        auto again = p::Base64Decode(p::Base64Encode(*d));
        Check(again.ok() && *again == *d, "base64 decode/encode/decode");
      }
      break;
    }
  }
  return 0;
}
