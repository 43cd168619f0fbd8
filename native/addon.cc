// Module entry. Context-aware: every Node environment (main thread or worker)
// gets its own AddonData, engines and event threads.
#include "addon.h"

#include <fcntl.h>
#include <libusb.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/fault.h"

namespace tsmuxd::addon {

namespace {

Napi::Value LibusbVersion(const Napi::CallbackInfo& info) {
  const libusb_version* v = libusb_get_version();
  return Napi::String::New(info.Env(), std::to_string(v->major) + "." + std::to_string(v->minor) +
                                           "." + std::to_string(v->micro));
}

}  // namespace

// lockFile(path) -> fd: opens (creating) a file and takes an fcntl write lock
// on it, for the daemon's pidfile. The lock lives as long as the fd; a crashed
// daemon leaves no stale lock behind. Throws ERR_LOCKED when another process
// holds it.
Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = argString(info, 0, "path");
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throwError(env, codes::kSystem, "open " + path + ": " + strerror(errno));
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  if (fcntl(fd, F_SETLK, &lock) != 0) {
    int err = errno;
    close(fd);
    if (err == EAGAIN || err == EACCES) throwError(env, "ERR_LOCKED", path + " is locked by another process");
    throwError(env, codes::kSystem, "lock " + path + ": " + strerror(err));
  }
  return Napi::Number::New(env, fd);
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  exports.Set("libusbVersion", Napi::Function::New(env, LibusbVersion, "libusbVersion"));
  exports.Set("lockFile", Napi::Function::New(env, LockFile, "lockFile"));
  initEngine(env, exports);
  initPeerCredentials(env, exports);
  return exports;
}

}  // namespace tsmuxd::addon

static Napi::Object InitTsmuxd(Napi::Env env, Napi::Object exports) {
  return tsmuxd::addon::init(env, exports);
}

NODE_API_MODULE(tsmuxd, InitTsmuxd)
