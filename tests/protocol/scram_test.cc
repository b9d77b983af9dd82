#include "protocol/scram.h"

#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <random>
#include <string>
#include <vector>

namespace pgregion::protocol {
namespace {

using namespace std::string_literals;

// absl::StrCat does not take std::string_view with Debian's abseil.
template <typename... Parts>
std::string Cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

// RFC 7677 section 3.
constexpr char kRfcSaltB64[] = "W22ZaJ0SNY7soEsUEjb6gQ==";
constexpr char kRfcClientNonce[] = "rOprNGfwEbeRWgbNEkqO";
constexpr char kRfcServerNonce[] = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr char kRfcNonce[] = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
// Verifier for "pencil" with the RFC's salt; the same string appears in
// PostgreSQL's regression tests, and python3 hashlib/hmac derive it too.
constexpr char kPencilVerifier[] =
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
constexpr char kServerNonce[] = "S3rv3rN0nc3+/=";
constexpr char kClientNonce[] = "cl13ntN0nc3";

std::string Unb64(std::string_view s) {
  absl::StatusOr<std::string> r = Base64Decode(s);
  REQUIRE(r.ok());
  return *r;
}

ScramVerifier PencilVerifier() { return MakeScramVerifier("pencil", Unb64(kRfcSaltB64), 4096); }

std::string CertHash() { return Sha256("not really a DER certificate"); }

// Client-side proof math with raw OpenSSL calls, independent of scram.cc, so a
// test can send any gs2 header / channel binding data the ScramClient never would.
std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string ClientFinalFor(std::string_view password, const ScramVerifier& v,
                           std::string_view client_first_bare, std::string_view server_first,
                           std::string_view without_proof) {
  unsigned char salted[32];
  REQUIRE(PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                            reinterpret_cast<const unsigned char*>(v.salt.data()),
                            static_cast<int>(v.salt.size()), v.iterations, EVP_sha256(), 32,
                            salted) == 1);
  std::string client_key =
      HmacSha256(std::string(reinterpret_cast<char*>(salted), 32), "Client Key");
  std::string auth = Cat(client_first_bare, ",", server_first, ",", without_proof);
  std::string sig = HmacSha256(Sha256(client_key), auth);
  std::string proof(32, '\0');
  for (int i = 0; i < 32; ++i) proof[i] = static_cast<char>(client_key[i] ^ sig[i]);
  return Cat(without_proof, ",p=", Base64Encode(proof));
}

// One full server-side exchange with a hand-made client. `cbind_data` is what
// the client puts after the gs2 header in c= (the cert hash it saw, for p=).
absl::StatusOr<std::string> RunServer(ScramServer& server, std::string_view mechanism,
                                      std::string_view gs2_header, std::string_view cbind_data,
                                      std::string_view password, const ScramVerifier& v) {
  std::string bare = Cat("n=,r=", kClientNonce);
  absl::StatusOr<std::string> first = server.HandleClientFirst(mechanism, Cat(gs2_header, bare));
  if (!first.ok()) return first.status();
  std::string without_proof =
      Cat("c=", Base64Encode(Cat(gs2_header, cbind_data)), ",r=", kClientNonce, kServerNonce);
  return server.HandleClientFinal(ClientFinalFor(password, v, bare, *first, without_proof));
}

// Client against server, both ours.
absl::Status RunBoth(std::string_view client_password, const ScramVerifier& v) {
  ScramServer server(v, kServerNonce, "");
  ScramClient client(std::string(client_password), kClientNonce);
  absl::StatusOr<std::string> server_first =
      server.HandleClientFirst(kScramSha256, client.ClientFirst());
  if (!server_first.ok()) return server_first.status();
  absl::StatusOr<std::string> client_final = client.HandleServerFirst(*server_first);
  if (!client_final.ok()) return client_final.status();
  absl::StatusOr<std::string> server_final = server.HandleClientFinal(*client_final);
  if (!server_final.ok()) return server_final.status();
  return client.HandleServerFinal(*server_final);
}

// Flips one bit of the base64 value of the last attribute of `msg` ("...,p=<b64>").
std::string TamperLastB64(std::string_view msg) {
  size_t comma = msg.rfind(',');
  size_t start = (comma == std::string_view::npos ? 0 : comma + 1) + 2;
  std::string raw = Unb64(msg.substr(start));
  raw[5] ^= 0x01;
  return Cat(msg.substr(0, start), Base64Encode(raw));
}

}  // namespace

TEST_CASE("Base64: RFC 4648 vectors and strict decoding") {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [raw, b64] : vectors) {
    CHECK(Base64Encode(raw) == b64);
    absl::StatusOr<std::string> decoded = Base64Decode(b64);
    REQUIRE(decoded.ok());
    CHECK(*decoded == raw);
  }
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t len = 0; len <= all.size(); len += 37) {
    absl::StatusOr<std::string> back = Base64Decode(Base64Encode(all.substr(0, len)));
    REQUIRE(back.ok());
    CHECK(*back == all.substr(0, len));
  }
  CHECK(Base64Encode("\xfb\xff\xbf") == "+/+/");
  for (const char* bad : {"Zg=", "Zg", "Z", "Zm9v Yg==", "Zm9\nv", "Zm9v\n", "Zm*v", "Z===", "====",
                          "Zg==Zg==", "=Zg=", "Zm=v", "Zh==", "Zm9=", "-_-_", "Zg\0="}) {
    CAPTURE(bad);
    CHECK_FALSE(Base64Decode(bad).ok());
  }
  CHECK_FALSE(Base64Decode("Zg\0="s).ok());
}

TEST_CASE("Sha256") {
  CHECK(Base64Encode(Sha256("abc")) == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
  CHECK(Sha256("").size() == 32);
}

TEST_CASE("verifier: derivation matches PostgreSQL and independent computations") {
  CHECK(PencilVerifier().ToString() == kPencilVerifier);

  // Produced by a real PostgreSQL 15 (CREATE ROLE alice PASSWORD 'secret' with
  // password_encryption=scram-sha-256; SELECT rolpassword FROM pg_authid).
  const std::string pg15 =
      "SCRAM-SHA-256$4096:HvAbSKj4B7eu/7fbbi0JDw==$bW7Z4Imk42yIHNOLCX0FzguehkWbIVQW9Nbgy5xGDMc=:"
      "LRzxN2OnMSAxNMSCkQvpP4+Op7GO3M+8dObTSHfBPrQ=";
  absl::StatusOr<ScramVerifier> parsed = ParseScramVerifier(pg15);
  REQUIRE(parsed.ok());
  CHECK(parsed->iterations == 4096);
  CHECK(parsed->salt.size() == 16);
  CHECK(parsed->ToString() == pg15);
  CHECK(MakeScramVerifier("secret", parsed->salt, 4096).ToString() == pg15);
  CHECK(RunBoth("secret", *parsed).ok());
  CHECK(RunBoth("Secret", *parsed).code() == absl::StatusCode::kUnauthenticated);

  // Cross-checked with the OpenSSL CLI:
  //   SP=$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt pass:secret
  //        -kdfopt hexsalt:$(printf pgregion-salt-16 | xxd -p) -kdfopt iter:4096 PBKDF2 | tr -d :)
  //   StoredKey: printf 'Client Key' | openssl dgst -sha256 -mac HMAC -macopt hexkey:$SP -binary
  //              | openssl dgst -sha256 -binary | base64
  //   ServerKey: printf 'Server Key' | openssl dgst -sha256 -mac HMAC -macopt hexkey:$SP -binary
  //              | base64
  ScramVerifier own = MakeScramVerifier("secret", "pgregion-salt-16", 4096);
  CHECK(own.ToString() ==
        "SCRAM-SHA-256$4096:cGdyZWdpb24tc2FsdC0xNg==$ksftwxFHbOstm0SqXCv0WEYrDk1uUV2QwKVmMsGdzxE=:"
        "/ijCEaNAuUrPp2Za9W2hnJgmDRHM0Ern1mbQrbvXLpU=");
  absl::StatusOr<ScramVerifier> own_back = ParseScramVerifier(own.ToString());
  REQUIRE(own_back.ok());
  CHECK(own_back->salt == "pgregion-salt-16");
  CHECK(own_back->stored_key == own.stored_key);
  CHECK(own_back->server_key == own.server_key);
  CHECK(LooksLikeScramVerifier(pg15));
  CHECK(LooksLikeScramVerifier(kPencilVerifier));
}

TEST_CASE("verifier: malformed text is rejected") {
  const std::string keys =
      "$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
  CHECK(ParseScramVerifier("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==" + keys).ok());
  CHECK(ParseScramVerifier("SCRAM-SHA-256$2147483647:W22ZaJ0SNY7soEsUEjb6gQ==" + keys).ok());
  for (const std::string& bad : std::vector<std::string>{
           "",
           "secret",
           "md53175bce1d3201d16594cebf9d7eb3f9d",
           "SCRAM-SHA-256$",
           "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
           "scram-sha-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
           "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
           "SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
           "SCRAM-SHA-256$+4096:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
           "SCRAM-SHA-256$ 4096:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
           "SCRAM-SHA-256$4096x:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
           "SCRAM-SHA-256$2147483648:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
           "SCRAM-SHA-256$99999999999:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
           "SCRAM-SHA-256$:W22ZaJ0SNY7soEsUEjb6gQ==" + keys,
           "SCRAM-SHA-256$4096:" + keys,                            // empty salt
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=" + keys,     // bad base64
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==:x" + keys,  // extra ':'
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==" + keys + "$",
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==" + keys + ":",
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$W22ZaJ0SNY7soEsUEjb6gQ==:"
           "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",  // 16-byte StoredKey
           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
           "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
           ":",
       }) {
    CAPTURE(bad);
    CHECK_FALSE(ParseScramVerifier(bad).ok());
    CHECK_FALSE(LooksLikeScramVerifier(bad));
  }
}

TEST_CASE("verifier: a failed derivation cannot authenticate anyone") {
  ScramVerifier v = MakeScramVerifier("pencil", "salt", 0);
  CHECK(v.stored_key.empty());
  CHECK(v.server_key.empty());
  CHECK_FALSE(ParseScramVerifier(v.ToString()).ok());
  ScramServer server(v, kServerNonce, "");
  CHECK(server.HandleClientFirst(kScramSha256, "n,,n=,r=abc").status().code() ==
        absl::StatusCode::kInternal);
}

TEST_CASE("ScramServer: RFC 7677 exchange") {
  ScramServer server(PencilVerifier(), kRfcServerNonce, "");
  absl::StatusOr<std::string> first =
      server.HandleClientFirst(kScramSha256, Cat("n,,n=user,r=", kRfcClientNonce));
  REQUIRE(first.ok());
  CHECK(*first == Cat("r=", kRfcNonce, ",s=", kRfcSaltB64, ",i=4096"));
  absl::StatusOr<std::string> final_msg = server.HandleClientFinal(
      Cat("c=biws,r=", kRfcNonce, ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="));
  REQUIRE(final_msg.ok());
  CHECK(*final_msg == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

TEST_CASE("ScramClient: fixed vector computed independently") {
  // python3: pbkdf2_hmac/hmac/sha256 over AuthMessage
  //   "n=,r=rOprNGfwEbeRWgbNEkqO" "," server-first "," "c=biws,r=<nonce>".
  ScramClient client("pencil", kRfcClientNonce);
  CHECK(client.ClientFirst() == Cat("n,,n=,r=", kRfcClientNonce));
  absl::StatusOr<std::string> final_msg =
      client.HandleServerFirst(Cat("r=", kRfcNonce, ",s=", kRfcSaltB64, ",i=4096"));
  REQUIRE(final_msg.ok());
  CHECK(*final_msg ==
        Cat("c=biws,r=", kRfcNonce, ",p=qvT2SWdEH5Q06albL+hjSYuUhCG7VndFyzIb7CK4n9k="));
  CHECK(client.HandleServerFinal("v=3HO6Qt1M4MKJrmlKaoOqLAI0/0TV0HZe7J9H3MBtSOg=").ok());
}

TEST_CASE("ScramClient against ScramServer") {
  CHECK(RunBoth("pencil", PencilVerifier()).ok());
  CHECK(RunBoth("pencil", MakeScramVerifier("pencil", "\x00\x01\xff"s, 1)).ok());
  CHECK(RunBoth("", MakeScramVerifier("", "salt", 2)).ok());
  CHECK(RunBoth("p\xc3\xa4ss,w=rd\x01"s, MakeScramVerifier("p\xc3\xa4ss,w=rd\x01"s, "s", 3)).ok());

  SUBCASE("wrong password") {
    CHECK(RunBoth("pencil2", PencilVerifier()).code() == absl::StatusCode::kUnauthenticated);
    CHECK(RunBoth("", PencilVerifier()).code() == absl::StatusCode::kUnauthenticated);
  }

  ScramServer server(PencilVerifier(), kServerNonce, "");
  ScramClient client("pencil", kClientNonce);
  absl::StatusOr<std::string> server_first =
      server.HandleClientFirst(kScramSha256, client.ClientFirst());
  REQUIRE(server_first.ok());
  CHECK(*server_first == Cat("r=", kClientNonce, kServerNonce, ",s=", kRfcSaltB64, ",i=4096"));
  absl::StatusOr<std::string> client_final = client.HandleServerFirst(*server_first);
  REQUIRE(client_final.ok());

  SUBCASE("tampered proof") {
    absl::StatusOr<std::string> r = server.HandleClientFinal(TamperLastB64(*client_final));
    CHECK(r.status().code() == absl::StatusCode::kUnauthenticated);
  }
  SUBCASE("tampered nonce") {
    std::string msg = *client_final;
    msg[msg.find(kServerNonce)] ^= 0x01;
    CHECK(server.HandleClientFinal(msg).status().code() == absl::StatusCode::kInvalidArgument);
  }
  SUBCASE("proof bound to the AuthMessage: another nonce is rejected") {
    ScramServer other(PencilVerifier(), "0therN0nce", "");
    REQUIRE(other.HandleClientFirst(kScramSha256, Cat("n,,n=,r=", kClientNonce)).ok());
    std::string msg = *client_final;
    msg.replace(msg.find(kServerNonce), std::string_view(kServerNonce).size(), "0therN0nce");
    CHECK(other.HandleClientFinal(msg).status().code() == absl::StatusCode::kUnauthenticated);
  }
  SUBCASE("tampered server signature") {
    absl::StatusOr<std::string> server_final = server.HandleClientFinal(*client_final);
    REQUIRE(server_final.ok());
    CHECK(client.HandleServerFinal(TamperLastB64(*server_final)).code() ==
          absl::StatusCode::kUnauthenticated);
  }
  SUBCASE("forged server signature") {
    REQUIRE(server.HandleClientFinal(*client_final).ok());
    CHECK(client.HandleServerFinal("v=" + Base64Encode(Sha256("forged"))).code() ==
          absl::StatusCode::kUnauthenticated);
  }
  SUBCASE("server error attribute") {
    absl::Status s = client.HandleServerFinal("e=invalid-proof");
    CHECK(s.code() == absl::StatusCode::kUnauthenticated);
    CHECK(s.message().find("invalid-proof") != std::string_view::npos);
  }
  SUBCASE("server error text is sanitized and bounded") {
    absl::Status s = client.HandleServerFinal("e=bad\x1b[31m" + std::string(1000, 'x'));
    CHECK(s.code() == absl::StatusCode::kUnauthenticated);
    CHECK(s.message().find('\x1b') == std::string_view::npos);
    CHECK(s.message().size() < 300);
  }
}

TEST_CASE("ScramServer: channel binding") {
  const ScramVerifier v = PencilVerifier();
  const std::string hash = CertHash();
  const std::string tls_gs2 = "p=tls-server-end-point,,";

  SUBCASE("PLUS with the right certificate hash") {
    ScramServer server(v, kServerNonce, hash);
    CHECK(RunServer(server, kScramSha256Plus, tls_gs2, hash, "pencil", v).ok());
  }
  SUBCASE("PLUS with another certificate hash (man in the middle)") {
    ScramServer server(v, kServerNonce, hash);
    absl::StatusOr<std::string> r =
        RunServer(server, kScramSha256Plus, tls_gs2, Sha256("mitm cert"), "pencil", v);
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(r.status().message().find("channel binding") != std::string_view::npos);
  }
  SUBCASE("PLUS without cbind data in c=") {
    ScramServer server(v, kServerNonce, hash);
    CHECK_FALSE(RunServer(server, kScramSha256Plus, tls_gs2, "", "pencil", v).ok());
  }
  SUBCASE("PLUS when the server offered no binding") {
    ScramServer server(v, kServerNonce, "");
    CHECK_FALSE(RunServer(server, kScramSha256Plus, tls_gs2, "", "pencil", v).ok());
  }
  SUBCASE("PLUS with an unsupported binding type") {
    ScramServer server(v, kServerNonce, hash);
    CHECK_FALSE(RunServer(server, kScramSha256Plus, "p=tls-unique,,", hash, "pencil", v).ok());
    ScramServer server2(v, kServerNonce, hash);
    CHECK_FALSE(RunServer(server2, kScramSha256Plus, "p=,,", hash, "pencil", v).ok());
  }
  SUBCASE("PLUS but gs2 says no binding") {
    ScramServer server(v, kServerNonce, hash);
    CHECK_FALSE(RunServer(server, kScramSha256Plus, "n,,", "", "pencil", v).ok());
    ScramServer server2(v, kServerNonce, hash);
    CHECK_FALSE(RunServer(server2, kScramSha256Plus, "y,,", "", "pencil", v).ok());
  }
  SUBCASE("p= with the non-PLUS mechanism") {
    ScramServer server(v, kServerNonce, hash);
    CHECK_FALSE(RunServer(server, kScramSha256, tls_gs2, hash, "pencil", v).ok());
  }
  SUBCASE("y with a server that offered PLUS is a downgrade") {
    ScramServer server(v, kServerNonce, hash);
    absl::StatusOr<std::string> r = RunServer(server, kScramSha256, "y,,", "", "pencil", v);
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(r.status().message().find("negotiation") != std::string_view::npos);
  }
  SUBCASE("y without TLS is fine, with c=eSws") {
    ScramServer server(v, kServerNonce, "");
    CHECK(RunServer(server, kScramSha256, "y,,", "", "pencil", v).ok());
  }
  SUBCASE("n when the server offered PLUS: the client may decline") {
    ScramServer server(v, kServerNonce, hash);
    CHECK(RunServer(server, kScramSha256, "n,,", "", "pencil", v).ok());
  }
  SUBCASE("c= must repeat the gs2 header that was sent") {
    ScramServer server(v, kServerNonce, "");
    std::string bare = Cat("n=,r=", kClientNonce);
    absl::StatusOr<std::string> first = server.HandleClientFirst(kScramSha256, "y,," + bare);
    REQUIRE(first.ok());
    std::string without_proof = Cat("c=biws,r=", kClientNonce, kServerNonce);
    CHECK_FALSE(
        server.HandleClientFinal(ClientFinalFor("pencil", v, bare, *first, without_proof)).ok());
  }
  SUBCASE("cert hash appended for n,, is rejected") {
    ScramServer server(v, kServerNonce, hash);
    CHECK_FALSE(RunServer(server, kScramSha256, "n,,", hash, "pencil", v).ok());
  }
}

TEST_CASE("ScramServer: malformed client-first-message") {
  const std::vector<std::string> bad = {
      "",
      "n",
      "n,",
      "n,,",
      "n,,n=user",
      "n,,r=abc",
      "n,,n=user,r=",
      "n,,n=user,r=abc,",
      "n,,n=user,r=abc,x",
      "n,,n=user,r=abc,=1",
      "n,,n=user,r=abc,1=1",
      "n,,n=user,r=ab,c",
      "n,,n=user,r=a\x7f",
      "n,,n=user,r=a b",
      "n,,n=user,r=a\0b"s,
      "n\0,,n=user,r=abc"s,
      "n,,m=ext,n=user,r=abc",
      "n,,n=user,m=ext,r=abc",
      "n,a=admin,n=user,r=abc",
      "n,x,n=user,r=abc",
      "x,,n=user,r=abc",
      "nn,,n=user,r=abc",
      "N,,n=user,r=abc",
      ",,n=user,r=abc",
      "p,,n=user,r=abc",
      "n,,,n=user,r=abc",
      "n,,n,r=abc",
      "n,,n=user,r",
  };
  for (const std::string& msg : bad) {
    CAPTURE(msg);
    ScramServer server(PencilVerifier(), kServerNonce, "");
    absl::StatusOr<std::string> r = server.HandleClientFirst(kScramSha256, msg);
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  }
  ScramServer server(PencilVerifier(), kServerNonce, "");
  CHECK_FALSE(server.HandleClientFirst("SCRAM-SHA-1", "n,,n=,r=abc").ok());
  ScramServer server2(PencilVerifier(), kServerNonce, "");
  CHECK_FALSE(server2.HandleClientFirst("", "n,,n=,r=abc").ok());

  // The user name is ignored, whatever it holds; extensions after the nonce are allowed.
  for (const char* ok : {"n,,n=,r=abc", "n,,n=us=2Cer,r=abc", "n,,n=user,r=abc,x=1,y="}) {
    CAPTURE(ok);
    ScramServer s(PencilVerifier(), kServerNonce, "");
    CHECK(s.HandleClientFirst(kScramSha256, ok).ok());
  }
}

TEST_CASE("ScramServer: malformed client-final-message") {
  const ScramVerifier v = PencilVerifier();
  const std::string bare = Cat("n=,r=", kClientNonce);
  const std::string nonce = Cat(kClientNonce, kServerNonce);
  auto fresh = [&](ScramServer& server) {
    absl::StatusOr<std::string> first = server.HandleClientFirst(kScramSha256, "n,," + bare);
    REQUIRE(first.ok());
    return *first;
  };
  const std::string good_proof = [&] {
    ScramServer server(v, kServerNonce, "");
    std::string first = fresh(server);
    std::string msg = ClientFinalFor("pencil", v, bare, first, "c=biws,r=" + nonce);
    return msg.substr(msg.rfind(",p=") + 3);
  }();

  const std::vector<std::string> bad = {
      "",
      "c=biws",
      "c=biws,r=" + nonce,
      "c=biws,r=" + nonce + ",",
      "c=biws,r=" + nonce + ",p=",
      "c=biws,r=" + nonce + ",p=" + good_proof + ",",
      "c=biws,r=" + nonce + ",p=" + good_proof + ",x=1",
      "c=biws,r=" + nonce + ",p=" + good_proof + ",p=" + good_proof,
      "c=biws,r=" + nonce + ",p=" + good_proof.substr(0, 40),
      "c=biws,r=" + nonce + ",p=" + good_proof.substr(1),
      "c=biws,r=" + nonce + ",p=" + good_proof + "AAAA",
      "c=biws,r=" + nonce + ",p=!" + good_proof.substr(1),
      "c=biws,r=" + nonce + ",p=" + good_proof + "\0"s,
      "r=" + nonce + ",c=biws,p=" + good_proof,
      "c=biws,p=" + good_proof,
      "c=biws,r=" + nonce + "x,p=" + good_proof,
      "c=biws,r=" + std::string(kClientNonce) + ",p=" + good_proof,
      "c=biws,r=,p=" + good_proof,
      "c=,r=" + nonce + ",p=" + good_proof,
      "c=bi,r=" + nonce + ",p=" + good_proof,
      "c=eSws,r=" + nonce + ",p=" + good_proof,
      "c=biws,,r=" + nonce + ",p=" + good_proof,
      "c=biws,r=" + nonce + ",1=2,p=" + good_proof,
      "c=biws,r=" + nonce + ",P=" + good_proof,
  };
  for (const std::string& msg : bad) {
    CAPTURE(msg);
    ScramServer server(v, kServerNonce, "");
    fresh(server);
    CHECK_FALSE(server.HandleClientFinal(msg).ok());
  }

  SUBCASE("the good proof works, with and without extensions before it") {
    ScramServer server(v, kServerNonce, "");
    CHECK(server
              .HandleClientFinal(
                  ClientFinalFor("pencil", v, bare, fresh(server), "c=biws,r=" + nonce))
              .ok());
    ScramServer server2(v, kServerNonce, "");
    CHECK(server2
              .HandleClientFinal(ClientFinalFor("pencil", v, bare, fresh(server2),
                                                "c=biws,r=" + nonce + ",x=ext,y="))
              .ok());
  }
  SUBCASE("every truncation of a valid message fails") {
    ScramServer probe(v, kServerNonce, "");
    std::string good = ClientFinalFor("pencil", v, bare, fresh(probe), "c=biws,r=" + nonce);
    for (size_t len = 0; len < good.size(); ++len) {
      ScramServer server(v, kServerNonce, "");
      fresh(server);
      CAPTURE(len);
      CHECK_FALSE(server.HandleClientFinal(good.substr(0, len)).ok());
    }
  }
}

TEST_CASE("ScramServer: calls out of order") {
  const std::string first = Cat("n,,n=,r=", kClientNonce);
  SUBCASE("final before first") {
    ScramServer server(PencilVerifier(), kServerNonce, "");
    CHECK(server.HandleClientFinal("c=biws,r=x,p=y").status().code() ==
          absl::StatusCode::kFailedPrecondition);
  }
  SUBCASE("first twice") {
    ScramServer server(PencilVerifier(), kServerNonce, "");
    REQUIRE(server.HandleClientFirst(kScramSha256, first).ok());
    CHECK(server.HandleClientFirst(kScramSha256, first).status().code() ==
          absl::StatusCode::kFailedPrecondition);
  }
  SUBCASE("a failed first ends the exchange") {
    ScramServer server(PencilVerifier(), kServerNonce, "");
    REQUIRE_FALSE(server.HandleClientFirst(kScramSha256, "garbage").ok());
    CHECK(server.HandleClientFirst(kScramSha256, first).status().code() ==
          absl::StatusCode::kFailedPrecondition);
    CHECK(server.HandleClientFinal("c=biws").status().code() ==
          absl::StatusCode::kFailedPrecondition);
  }
  SUBCASE("one final only: no second guess after a wrong password, no replay after success") {
    const ScramVerifier v = PencilVerifier();
    const std::string bare = Cat("n=,r=", kClientNonce);
    const std::string without_proof = Cat("c=biws,r=", kClientNonce, kServerNonce);
    ScramServer server(v, kServerNonce, "");
    absl::StatusOr<std::string> server_first = server.HandleClientFirst(kScramSha256, first);
    REQUIRE(server_first.ok());
    std::string right = ClientFinalFor("pencil", v, bare, *server_first, without_proof);
    std::string wrong = ClientFinalFor("pencil!", v, bare, *server_first, without_proof);
    CHECK(server.HandleClientFinal(wrong).status().code() == absl::StatusCode::kUnauthenticated);
    CHECK(server.HandleClientFinal(right).status().code() == absl::StatusCode::kFailedPrecondition);

    ScramServer server2(v, kServerNonce, "");
    REQUIRE(server2.HandleClientFirst(kScramSha256, first).ok());
    CHECK(server2.HandleClientFinal(right).ok());
    CHECK(server2.HandleClientFinal(right).status().code() ==
          absl::StatusCode::kFailedPrecondition);
  }
  SUBCASE("bad server nonce is an internal error") {
    for (const char* nonce : {"", "a,b", "a b"}) {
      ScramServer server(PencilVerifier(), nonce, "");
      CHECK(server.HandleClientFirst(kScramSha256, first).status().code() ==
            absl::StatusCode::kInternal);
    }
  }
}

TEST_CASE("ScramClient: malformed server-first-message") {
  const std::string salt = std::string(",s=") + kRfcSaltB64;
  const std::string nonce = Cat("r=", kClientNonce, "srv");
  const std::vector<std::string> bad = {
      "",
      nonce,
      nonce + salt,
      nonce + salt + ",i=",
      nonce + salt + ",i=0",
      nonce + salt + ",i=-1",
      nonce + salt + ",i=+4096",
      nonce + salt + ",i= 4096",
      nonce + salt + ",i=4096 ",
      nonce + salt + ",i=4096x",
      nonce + salt + ",i=0x10",
      nonce + salt + ",i=" + std::to_string(kMaxScramIterations + 1),
      nonce + salt + ",i=2147483647",
      nonce + salt + ",i=2147483648",
      nonce + salt + ",i=99999999999999999999999",
      nonce + salt + ",i=4096,",
      nonce + salt + ",i=4096,x=1",
      nonce + salt + ",i=4096\0"s,
      nonce + ",i=4096" + salt,
      salt.substr(1) + "," + nonce + ",i=4096",
      "m=ext," + nonce + salt + ",i=4096",
      nonce + ",s=,i=4096",
      nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096",
      nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==\n,i=4096",
      Cat("r=", kClientNonce, salt, ",i=4096"),   // server added nothing
      Cat("r=X", kClientNonce, salt, ",i=4096"),  // not a prefix
      Cat("r=", std::string(kClientNonce).substr(1), "xx", salt, ",i=4096"),
      Cat("r=", kClientNonce, "a\x01", salt, ",i=4096"),  // not printable
      Cat("r=", kClientNonce, "\xff", salt, ",i=4096"),
      "r=" + salt + ",i=4096",
  };
  for (const std::string& msg : bad) {
    CAPTURE(msg);
    ScramClient client("pencil", kClientNonce);
    client.ClientFirst();
    CHECK(client.HandleServerFirst(msg).status().code() == absl::StatusCode::kInvalidArgument);
  }

  SUBCASE("iteration cap is inclusive") {
    ScramClient client("pencil", kClientNonce);
    client.ClientFirst();
    CHECK(
        client.HandleServerFirst(nonce + salt + ",i=" + std::to_string(kMaxScramIterations)).ok());
  }
  SUBCASE("order") {
    ScramClient client("pencil", kClientNonce);
    CHECK(client.HandleServerFirst(nonce + salt + ",i=1").status().code() ==
          absl::StatusCode::kFailedPrecondition);
    CHECK(client.HandleServerFinal("v=" + Base64Encode(Sha256(""))).code() ==
          absl::StatusCode::kFailedPrecondition);
    client.ClientFirst();
    REQUIRE(client.HandleServerFirst(nonce + salt + ",i=1").ok());
    CHECK(client.HandleServerFirst(nonce + salt + ",i=1").status().code() ==
          absl::StatusCode::kFailedPrecondition);
    CHECK(client.HandleServerFinal("v=" + Base64Encode(Sha256(""))).code() ==
          absl::StatusCode::kUnauthenticated);
    CHECK(client.HandleServerFinal("v=" + Base64Encode(Sha256(""))).code() ==
          absl::StatusCode::kFailedPrecondition);
  }
  SUBCASE("a failed server-first ends the exchange") {
    ScramClient client("pencil", kClientNonce);
    client.ClientFirst();
    REQUIRE_FALSE(client.HandleServerFirst("garbage").ok());
    CHECK(client.HandleServerFirst(nonce + salt + ",i=1").status().code() ==
          absl::StatusCode::kFailedPrecondition);
  }
  SUBCASE("bad client nonce is an internal error") {
    for (const char* n : {"", "a,b", "a\x01"}) {
      ScramClient client("pencil", n);
      client.ClientFirst();
      CHECK(client.HandleServerFirst(Cat("r=", n, "srv", salt, ",i=1")).status().code() ==
            absl::StatusCode::kInternal);
    }
  }
}

TEST_CASE("ScramClient: malformed server-final-message") {
  ScramServer server(PencilVerifier(), kServerNonce, "");
  ScramClient probe("pencil", kClientNonce);
  absl::StatusOr<std::string> server_first =
      server.HandleClientFirst(kScramSha256, probe.ClientFirst());
  REQUIRE(server_first.ok());
  absl::StatusOr<std::string> client_final = probe.HandleServerFirst(*server_first);
  REQUIRE(client_final.ok());
  absl::StatusOr<std::string> good = server.HandleClientFinal(*client_final);
  REQUIRE(good.ok());
  REQUIRE(probe.HandleServerFinal(*good).ok());

  std::vector<std::string> bad = {"",
                                  "v=",
                                  "v",
                                  "x=abc",
                                  "e",
                                  *good + ",",
                                  *good + ",x=1",
                                  *good + "\0"s,
                                  "v=AAAA",
                                  good->substr(0, good->size() - 4),
                                  "V" + good->substr(1),
                                  good->substr(0, good->size() - 1) + "\n"};
  for (size_t len = 0; len < good->size(); ++len) bad.push_back(good->substr(0, len));
  for (const std::string& msg : bad) {
    CAPTURE(msg);
    ScramClient client("pencil", kClientNonce);
    client.ClientFirst();
    REQUIRE(client.HandleServerFirst(*server_first).ok());
    CHECK_FALSE(client.HandleServerFinal(msg).ok());
  }
}

TEST_CASE("random and mutated input never crashes") {
  std::mt19937 rng(20261122);
  const ScramVerifier v = PencilVerifier();
  const std::string bare = Cat("n=,r=", kClientNonce);
  const std::string good_first = "n,," + bare;
  ScramServer probe(v, kServerNonce, CertHash());
  absl::StatusOr<std::string> server_first = probe.HandleClientFirst(kScramSha256, good_first);
  REQUIRE(server_first.ok());
  const std::string good_final = ClientFinalFor("pencil", v, bare, *server_first,
                                                Cat("c=biws,r=", kClientNonce, kServerNonce));
  const std::string alphabet = "npyrscmaeiv=,+/0123456789ABCZabcz-_ \x01\x7f\xff\0"s;

  auto mutate = [&](std::string s) {
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          if (pos < s.size()) s[pos] = c;
          break;
        case 1:
          s.insert(s.begin() + static_cast<std::ptrdiff_t>(pos), c);
          break;
        case 2:
          if (pos < s.size()) s.erase(pos, 1 + rng() % 8);
          break;
      }
    }
    return s;
  };
  auto random_bytes = [&] {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 2 ? alphabet[rng() % alphabet.size()] : rng());
    return s;
  };

  int accepted_final = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string first = i % 2 ? mutate(good_first) : random_bytes();
    std::string fin = i % 2 ? mutate(good_final) : random_bytes();
    ScramServer server(v, kServerNonce, CertHash());
    (void)server.HandleClientFirst(i % 3 ? kScramSha256 : kScramSha256Plus, first);
    ScramServer server2(v, kServerNonce, CertHash());
    if (server2.HandleClientFirst(kScramSha256, good_first).ok() &&
        server2.HandleClientFinal(fin).ok() && fin != good_final) {
      ++accepted_final;
    }

    ScramClient client("pencil", kClientNonce);
    client.ClientFirst();
    std::string sf = i % 2 ? mutate(*server_first) : random_bytes();
    // Keep PBKDF2 cheap: mutations may change the iteration count.
    if (sf.find(",i=") != std::string::npos && sf.size() > sf.find(",i=") + 7) continue;
    if (client.HandleServerFirst(sf).ok()) {
      (void)client.HandleServerFinal(i % 2 ? mutate("v=" + Base64Encode(Sha256("x")))
                                           : random_bytes());
    }
  }
  CHECK(accepted_final == 0);
}

}  // namespace pgregion::protocol
