#pragma once
// TLS over memory buffers, for a tunnel whose ciphertext rides a mux
// connection rather than a socket. OpenSSL is the node process's own: the
// addon is compiled against Debian's libssl-dev headers and links no
// libssl, so these symbols resolve to the ones node exports (its OpenSSL
// 3.0 matches the headers' ABI; test/native-openssl.test.ts checks that the
// running node exports every one we import).
//
// One SSL object per tunnel (or per remote usbmux connection, see
// createMutual), used on the event thread only.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct bio_st BIO;

namespace tsmuxd::tunnel {

class TlsChannel {
 public:
  enum class Role { Client, Server };
  enum class Progress { Handshaking, Ready, Failed };

  // PEM certificate and key; null with `error` if OpenSSL refuses them.
  static std::unique_ptr<TlsChannel> create(Role role, const std::string& certPem,
                                            const std::string& keyPem, std::string& error);
  // Remote usbmux (docs/remote.md): TLS 1.3 only, and each end must present
  // a certificate that chains to `caPem` (one or more PEM certificates) and
  // is valid now; a server refuses a client without one. Names are not
  // checked: the CA is the fleet's own, and it alone says who belongs. A
  // close_notify from the peer ends its direction only (peerClosed()).
  static std::unique_ptr<TlsChannel> createMutual(Role role, const std::string& certPem,
                                                  const std::string& keyPem, const std::string& caPem,
                                                  std::string& error);
  ~TlsChannel();
  TlsChannel(const TlsChannel&) = delete;
  TlsChannel& operator=(const TlsChannel&) = delete;

  // Ciphertext from the peer.
  void feed(const uint8_t* data, size_t len);
  // Runs the handshake as far as the bytes allow (its output lands in the
  // ciphertext buffer).
  Progress handshake();
  // Plaintext: > 0 bytes, 0 when more ciphertext is needed, -1 when the peer
  // closed or the stream failed (error()).
  long read(uint8_t* out, size_t cap);
  // Encrypts all of `len` as one or more records; false on failure.
  bool write(const uint8_t* data, size_t len);
  // Ciphertext for the peer.
  size_t pendingOutput() const;
  // Ciphertext fed but not yet decrypted.
  size_t pendingInput() const;
  size_t takeOutput(uint8_t* out, size_t cap);

  // Called with each key log line (SSLKEYLOGFILE format, no newline) as
  // OpenSSL derives the session's secrets, on the thread that drives it.
  void setKeylog(std::function<void(const char*)> sink) { keylog_ = std::move(sink); }
  // Sends close_notify (our direction ends; the peer's may go on).
  void closeWrites();
  // The peer sent close_notify (createMutual channels; others fail instead).
  bool peerClosed() const { return peerClosed_; }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384, peer CN=..." once the handshake is done.
  std::string describe() const;

  const std::string& error() const { return error_; }
  std::string version() const;
  std::string cipher() const;

 private:
  TlsChannel() = default;
  static std::unique_ptr<TlsChannel> make(Role role, const std::string& certPem, const std::string& keyPem,
                                          const std::string* caPem, std::string& error);
  void fail(const char* what);
  static void onKeylog(const SSL* ssl, const char* line);

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
  std::string error_;
  std::function<void(const char*)> keylog_;
  bool halfClose_ = false;
  bool peerClosed_ = false;
};

}  // namespace tsmuxd::tunnel
