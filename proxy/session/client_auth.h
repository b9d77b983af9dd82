// Authenticates one client against [[users]]: SCRAM-SHA-256 (and -PLUS over
// TLS), md5 or trust. Byte-in / byte-out: the session feeds it PasswordMessage
// bodies and writes what it returns. Unknown users go through the same exchange
// and fail with the same message as a wrong password (no user enumeration).
// Owned by a ClientSession during login; loop thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "protocol/scram.h"
#include "proxy/config/config.h"

namespace pgregion::proxy {

class ClientAuth {
 public:
  enum class Result { kContinue, kOk, kFail };
  struct Step {
    Result result = Result::kContinue;
    std::string out;  // messages to send to the client
  };

  // `user` may be null (unknown user). `verifier` is the user's SCRAM verifier
  // (derived from a plaintext password once per config) or a decoy for unknown
  // users. `cert_hash` is non-empty when the client connection uses TLS.
  ClientAuth(const UserConfig* user, std::string user_name, const protocol::ScramVerifier* verifier,
             std::string cert_hash);

  // First message: AuthenticationOk for trust, else the challenge.
  Step Begin();
  // A PasswordMessage / SASLInitialResponse / SASLResponse body.
  Step OnPasswordMessage(std::string_view body);

 private:
  Step Fail();
  Step Ok(std::string prefix);

  const UserConfig* user_;
  std::string user_name_;
  const protocol::ScramVerifier* verifier_;
  std::string cert_hash_;
  AuthMethod method_;
  std::string md5_salt_;
  std::unique_ptr<protocol::ScramServer> scram_;
  int step_ = 0;
};

}  // namespace pgregion::proxy
