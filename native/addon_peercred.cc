// peerCredentials(fd) -> {pid, uid, gid}: who is at the other end of a
// connected Unix socket, as the kernel recorded it at connect time
// (SO_PEERCRED), so the daemon can keep its own extension requests to the
// socket owner's user and root. Not a Unix socket: ERR_NOT_UNIX_SOCKET (TCP
// peers carry no credentials).
#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "addon.h"
#include "core/fault.h"

namespace tsmuxd::addon {

namespace {

constexpr const char* kNotUnixSocket = "ERR_NOT_UNIX_SOCKET";

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = int(argUint(info, 0, "fd", INT_MAX));
  sockaddr_storage local{};
  socklen_t localLength = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLength) != 0) {
    throwError(env, codes::kSystem, std::string("getsockname: ") + strerror(errno));
  }
  if (local.ss_family != AF_UNIX) throwError(env, kNotUnixSocket, "not a Unix socket: no peer credentials");
  Napi::Object out = Napi::Object::New(env);
#if defined(SO_PEERCRED)
  ucred cred{};
  socklen_t length = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) {
    throwError(env, codes::kSystem, std::string("SO_PEERCRED: ") + strerror(errno));
  }
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
#else
  // BSD and macOS: the same facts without the pid.
  uid_t uid;
  gid_t gid;
  if (getpeereid(fd, &uid, &gid) != 0) throwError(env, codes::kSystem, std::string("getpeereid: ") + strerror(errno));
  out.Set("pid", Napi::Number::New(env, 0));
  out.Set("uid", Napi::Number::New(env, uid));
  out.Set("gid", Napi::Number::New(env, gid));
#endif
  return out;
}

}  // namespace

void initPeerCredentials(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
}

}  // namespace tsmuxd::addon
