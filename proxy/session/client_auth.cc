#include "proxy/session/client_auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "protocol/md5.h"
#include "protocol/message_builder.h"
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "protocol/str_util.h"

namespace pgregion::proxy {

namespace p = ::pgregion::protocol;

ClientAuth::ClientAuth(const UserConfig* user, std::string user_name,
                       const protocol::ScramVerifier* verifier, std::string cert_hash)
    : user_(user),
      user_name_(std::move(user_name)),
      verifier_(verifier),
      cert_hash_(std::move(cert_hash)),
      method_(user != nullptr ? user->auth : AuthMethod::kScramSha256) {}

ClientAuth::Step ClientAuth::Begin() {
  Step step;
  switch (method_) {
    case AuthMethod::kTrust:
      return Ok("");
    case AuthMethod::kMd5: {
      md5_salt_.assign(4, '\0');
      RAND_bytes(reinterpret_cast<unsigned char*>(md5_salt_.data()), 4);
      p::AppendAuthenticationMd5Password(&step.out, md5_salt_);
      return step;
    }
    case AuthMethod::kScramSha256: {
      std::vector<std::string_view> mechs;
      if (!cert_hash_.empty()) mechs.push_back(p::kScramSha256Plus);
      mechs.push_back(p::kScramSha256);
      p::AppendAuthenticationSasl(&step.out, mechs);
      scram_ = std::make_unique<p::ScramServer>(*verifier_, p::ScramNonce(18), cert_hash_);
      return step;
    }
  }
  return Fail();
}

ClientAuth::Step ClientAuth::OnPasswordMessage(std::string_view body) {
  ++step_;
  switch (method_) {
    case AuthMethod::kTrust:
      return Fail();
    case AuthMethod::kMd5: {
      absl::StatusOr<std::string_view> pw = p::ParsePasswordMessage(body);
      if (!pw.ok() || user_ == nullptr) return Fail();
      std::string stored = p::LooksLikeMd5Stored(user_->password)
                               ? user_->password
                               : p::Md5StoredPassword(user_name_, user_->password);
      std::string expected = p::Md5Response(stored, md5_salt_);
      if (pw->size() != expected.size() ||
          CRYPTO_memcmp(pw->data(), expected.data(), expected.size()) != 0) {
        return Fail();
      }
      return Ok("");
    }
    case AuthMethod::kScramSha256: {
      if (step_ == 1) {
        absl::StatusOr<p::SaslInitialResponse> init = p::ParseSaslInitialResponse(body);
        if (!init.ok()) return Fail();
        absl::StatusOr<std::string> server_first =
            scram_->HandleClientFirst(init->mechanism, init->data);
        if (!server_first.ok()) return Fail();
        Step step;
        p::AppendAuthenticationSaslContinue(&step.out, *server_first);
        return step;
      }
      if (step_ == 2) {
        absl::StatusOr<std::string> server_final = scram_->HandleClientFinal(body);
        // The decoy verifier of an unknown user never matches, but check anyway.
        if (!server_final.ok() || user_ == nullptr) return Fail();
        std::string out;
        p::AppendAuthenticationSaslFinal(&out, *server_final);
        return Ok(std::move(out));
      }
      return Fail();
    }
  }
  return Fail();
}

ClientAuth::Step ClientAuth::Ok(std::string prefix) {
  Step step;
  step.result = Result::kOk;
  step.out = std::move(prefix);
  p::AppendAuthenticationOk(&step.out);
  return step;
}

ClientAuth::Step ClientAuth::Fail() {
  Step step;
  step.result = Result::kFail;
  // Worded exactly as PostgreSQL does, for unknown users too.
  std::string msg = StrCat("password authentication failed for user \"", user_name_, "\"");
  p::AppendErrorResponse(
      &step.out, {.severity = "FATAL", .sqlstate = p::sqlstate::kInvalidPassword, .message = msg});
  return step;
}

}  // namespace pgregion::proxy
