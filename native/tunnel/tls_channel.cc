#include "tunnel/tls_channel.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <climits>

namespace tsmuxd::tunnel {

namespace {

// What OpenSSL's error queue says, emptied so the next call starts clean.
std::string takeOpenSslErrors() {
  std::string text;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text;
}

}  // namespace

std::unique_ptr<TlsChannel> TlsChannel::create(Role role, const std::string& certPem,
                                               const std::string& keyPem, std::string& error) {
  return make(role, certPem, keyPem, nullptr, error);
}

std::unique_ptr<TlsChannel> TlsChannel::createMutual(Role role, const std::string& certPem,
                                                     const std::string& keyPem, const std::string& caPem,
                                                     std::string& error) {
  return make(role, certPem, keyPem, &caPem, error);
}

namespace {

// Every certificate in `pem` into the context's trust store; false if none.
bool trustCertificates(SSL_CTX* ctx, const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), int(pem.size()));
  if (!bio) return false;
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (X509_STORE_add_cert(store, cert) == 1) ++added;
    X509_free(cert);
  }
  BIO_free(bio);
  ERR_clear_error();  // the read that ended the loop left "no start line"
  return added > 0;
}

}  // namespace

std::unique_ptr<TlsChannel> TlsChannel::make(Role role, const std::string& certPem, const std::string& keyPem,
                                             const std::string* caPem, std::string& error) {
  ERR_clear_error();
  std::unique_ptr<TlsChannel> ch(new TlsChannel());
  ch->ctx_ = SSL_CTX_new(role == Role::Client ? TLS_client_method() : TLS_server_method());
  if (!ch->ctx_) {
    error = "SSL_CTX_new failed: " + takeOpenSslErrors();
    return nullptr;
  }
  if (caPem) {
    // Remote usbmux: TLS 1.3, OpenSSL's default suites and security level,
    // and the peer's chain checked against the fleet's CA both ways.
    ch->halfClose_ = true;
    SSL_CTX_set_min_proto_version(ch->ctx_, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ch->ctx_, TLS1_3_VERSION);
    if (!trustCertificates(ch->ctx_, *caPem)) {
      error = "the CA file holds no PEM certificate";
      return nullptr;
    }
    SSL_CTX_set_verify(ch->ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  } else {
    // Lockdown's service TLS: TLS 1.2 as a phone speaks it (appium-ios-tuntap
    // pins 1.2 too), and security level 0 because pair records made by older
    // hosts carry SHA-1 signatures. Neither end verifies the other's chain:
    // the certificates are the pair record's, self-issued (reference §1.1).
    SSL_CTX_set_min_proto_version(ch->ctx_, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ch->ctx_, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ch->ctx_, "ALL:!aNULL:!eNULL:@SECLEVEL=0");
    SSL_CTX_set_security_level(ch->ctx_, 0);
    SSL_CTX_set_verify(ch->ctx_, SSL_VERIFY_NONE, nullptr);
  }
  SSL_CTX_set_keylog_callback(ch->ctx_, &TlsChannel::onKeylog);

  BIO* certBio = BIO_new_mem_buf(certPem.data(), int(certPem.size()));
  X509* cert = certBio ? PEM_read_bio_X509(certBio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(certBio);
  BIO* keyBio = BIO_new_mem_buf(keyPem.data(), int(keyPem.size()));
  EVP_PKEY* key = keyBio ? PEM_read_bio_PrivateKey(keyBio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(keyBio);
  bool ok = cert && key && SSL_CTX_use_certificate(ch->ctx_, cert) == 1 &&
            SSL_CTX_use_PrivateKey(ch->ctx_, key) == 1 && SSL_CTX_check_private_key(ch->ctx_) == 1;
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!ok) {
    std::string why = takeOpenSslErrors();
    error = std::string(!cert ? "the certificate is not PEM" : !key ? "the private key is not PEM" : "the key does not match the certificate") +
            (why.empty() ? "" : " (" + why + ")");
    return nullptr;
  }

  ch->ssl_ = SSL_new(ch->ctx_);
  ch->in_ = BIO_new(BIO_s_mem());
  ch->out_ = BIO_new(BIO_s_mem());
  if (!ch->ssl_ || !ch->in_ || !ch->out_) {
    BIO_free(ch->in_);
    BIO_free(ch->out_);
    ch->in_ = ch->out_ = nullptr;
    error = "SSL_new failed: " + takeOpenSslErrors();
    return nullptr;
  }
  // A memory BIO that runs dry asks for more instead of reporting EOF.
  BIO_set_mem_eof_return(ch->in_, -1);
  SSL_set_bio(ch->ssl_, ch->in_, ch->out_);
  SSL_set_app_data(ch->ssl_, ch.get());
  if (role == Role::Client) SSL_set_connect_state(ch->ssl_);
  else SSL_set_accept_state(ch->ssl_);
  return ch;
}

TlsChannel::~TlsChannel() {
  if (ssl_) SSL_free(ssl_);  // frees both BIOs
  if (ctx_) SSL_CTX_free(ctx_);
}

void TlsChannel::onKeylog(const SSL* ssl, const char* line) {
  auto* ch = static_cast<TlsChannel*>(SSL_get_app_data(ssl));
  if (ch && ch->keylog_) ch->keylog_(line);
}

void TlsChannel::fail(const char* what) {
  if (!error_.empty()) return;
  std::string why = takeOpenSslErrors();
  error_ = std::string(what) + (why.empty() ? "" : ": " + why);
}

void TlsChannel::feed(const uint8_t* data, size_t len) {
  while (len > 0) {
    int chunk = int(len > size_t(INT_MAX) ? size_t(INT_MAX) : len);
    int n = BIO_write(in_, data, chunk);
    if (n <= 0) {
      fail("BIO_write failed");
      return;
    }
    data += n;
    len -= size_t(n);
  }
}

TlsChannel::Progress TlsChannel::handshake() {
  if (!error_.empty()) return Progress::Failed;
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) return Progress::Ready;
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Progress::Handshaking;
  long verify = SSL_get_verify_result(ssl_);
  std::string what = "TLS handshake failed";
  if (verify != X509_V_OK) what += std::string(" (the peer's certificate: ") + X509_verify_cert_error_string(verify) + ")";
  fail(what.c_str());
  return Progress::Failed;
}

// The hot path does not clear OpenSSL's (thread-local) error queue before
// each call: it is empty unless a call failed, and fail() drains it then.
long TlsChannel::read(uint8_t* out, size_t cap) {
  if (!error_.empty()) return -1;
  size_t got = 0;
  int rc = SSL_read_ex(ssl_, out, cap, &got);
  if (rc == 1) return long(got);
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
  if (err == SSL_ERROR_ZERO_RETURN) {
    if (halfClose_) peerClosed_ = true;
    else error_ = "the peer closed TLS (close_notify)";
    return -1;
  }
  fail("TLS read failed");
  return -1;
}

bool TlsChannel::write(const uint8_t* data, size_t len) {
  if (!error_.empty()) return false;
  size_t written = 0;
  if (SSL_write_ex(ssl_, data, len, &written) == 1 && written == len) return true;
  fail("TLS write failed");
  return false;
}

size_t TlsChannel::pendingOutput() const { return BIO_ctrl_pending(out_); }

size_t TlsChannel::pendingInput() const { return BIO_ctrl_pending(in_); }

size_t TlsChannel::takeOutput(uint8_t* out, size_t cap) {
  int chunk = int(cap > size_t(INT_MAX) ? size_t(INT_MAX) : cap);
  int n = BIO_read(out_, out, chunk);
  return n > 0 ? size_t(n) : 0;
}

void TlsChannel::closeWrites() {
  if (!error_.empty()) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // queues close_notify in the output BIO; the answer is not awaited
}

std::string TlsChannel::describe() const {
  std::string text = version() + " " + cipher();
  if (X509* peer = SSL_get1_peer_certificate(ssl_)) {
    char name[256];
    X509_NAME_oneline(X509_get_subject_name(peer), name, sizeof name);
    text += std::string(", peer ") + name;
    X509_free(peer);
  }
  return text;
}

std::string TlsChannel::version() const { return SSL_get_version(ssl_); }

std::string TlsChannel::cipher() const {
  const char* name = SSL_get_cipher_name(ssl_);
  return name ? name : "";
}

}  // namespace tsmuxd::tunnel
