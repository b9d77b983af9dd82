#include "proxy/net/tls_context.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstring>

#include "protocol/str_util.h"

namespace pgregion::proxy {
namespace {

constexpr unsigned char kAlpnPostgresql[] = "postgresql";

int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  // Wire format: length-prefixed names.
  for (unsigned int i = 0; i < inlen;) {
    unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == sizeof(kAlpnPostgresql) - 1 && memcmp(in + i + 1, kAlpnPostgresql, len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  // Like PostgreSQL 17: a client offering ALPN without "postgresql" is refused.
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// RFC 5929 tls-server-end-point: hash of the DER certificate with the
// signature's digest, SHA-256 when that is MD5 or SHA-1.
absl::StatusOr<std::string> EndPointHash(X509* cert) {
  int md_nid = NID_undef;
  if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, nullptr)) {
    return absl::InvalidArgumentError("cannot determine the certificate's signature algorithm");
  }
  const EVP_MD* md = nullptr;
  if (md_nid == NID_md5 || md_nid == NID_sha1) {
    md = EVP_sha256();
  } else {
    md = EVP_get_digestbynid(md_nid);
  }
  if (md == nullptr) return absl::InvalidArgumentError("unsupported certificate signature digest");
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!X509_digest(cert, md, buf, &len)) return absl::InternalError(OpenSslErrors());
  return std::string(reinterpret_cast<char*>(buf), len);
}

}  // namespace

std::string OpenSslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

absl::StatusOr<std::unique_ptr<TlsContext>> TlsContext::CreateServer(const std::string& cert_file,
                                                                     const std::string& key_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError(OpenSslErrors());
  std::unique_ptr<TlsContext> out(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Idle clients must stay cheap: release OpenSSL's buffers between records.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(StrCat("tls.cert_file ", cert_file, ": ", OpenSslErrors()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError(StrCat("tls.key_file ", key_file, ": ", OpenSslErrors()));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError("tls.key_file does not match tls.cert_file");
  }
  SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, nullptr);
  absl::StatusOr<std::string> hash = EndPointHash(SSL_CTX_get0_certificate(ctx));
  if (!hash.ok()) return hash.status();
  out->end_point_hash_ = *std::move(hash);
  return out;
}

absl::StatusOr<std::unique_ptr<TlsContext>> TlsContext::CreateClient(const std::string& ca_file,
                                                                     bool verify) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return absl::InternalError(OpenSslErrors());
  std::unique_ptr<TlsContext> out(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (!ca_file.empty() && SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    return absl::InvalidArgumentError(
        StrCat("server_tls.ca_file ", ca_file, ": ", OpenSslErrors()));
  }
  out->verify_ = verify;
  SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  return out;
}

}  // namespace pgregion::proxy
