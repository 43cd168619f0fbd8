#include "usb/ffs_function.h"

#include <fcntl.h>
#include <linux/usb/functionfs.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace tsmuxd::usb {

namespace {

// struct usb_functionfs_event: 8 bytes of setup packet, type, 3 bytes pad.
constexpr size_t kEventSize = 12;
static_assert(sizeof(usb_functionfs_event) == kEventSize, "FunctionFS event layout");
constexpr size_t kEventsPerRead = 8;
// statfs f_type of a functionfs mount (fs/usb/gadget/function/f_fs.c; not
// in the uapi headers).
constexpr long kFunctionFsMagic = 0xa647361;

bool writeAll(int fd, const std::vector<uint8_t>& blob, const char* what, std::string& error) {
  // ep0 takes each blob in one write and parses it whole.
  ssize_t n;
  do {
    n = ::write(fd, blob.data(), blob.size());
  } while (n < 0 && errno == EINTR);
  if (n == ssize_t(blob.size())) return true;
  error = std::string("writing FunctionFS ") + what + ": " +
          (n < 0 ? strerror(errno) : "short write of " + std::to_string(n) + " bytes");
  return false;
}

int openFile(const std::string& path, int flags, std::string& error) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) error = "open " + path + ": " + strerror(errno);
  return fd;
}

}  // namespace

const char* ffsEventName(FfsFunction::Event e) {
  switch (e) {
    case FfsFunction::Event::Bind: return "BIND";
    case FfsFunction::Event::Unbind: return "UNBIND";
    case FfsFunction::Event::Enable: return "ENABLE";
    case FfsFunction::Event::Disable: return "DISABLE";
    case FfsFunction::Event::Suspend: return "SUSPEND";
    case FfsFunction::Event::Resume: return "RESUME";
    case FfsFunction::Event::Setup: return "SETUP";
  }
  return "?";
}

std::unique_ptr<FfsFunction> FfsFunction::open(const std::string& dir, const FfsInterfaceSpec& spec,
                                               bool openEndpoints, std::string& error) {
  if (openEndpoints && (spec.endpoints.size() != 2 || spec.endpoints[0].in || !spec.endpoints[1].in ||
                        spec.endpoints[0].interrupt || spec.endpoints[1].interrupt)) {
    error = "a mux function has a bulk OUT then a bulk IN endpoint";
    return nullptr;
  }
  FfsBlobs blobs;
  if (Fault f = buildFfsBlobs(spec, blobs)) {
    error = f.message;
    return nullptr;
  }
  if (dir.empty() || dir.size() > 4000) {
    error = "FunctionFS mount path is empty or too long";
    return nullptr;
  }
  // Blocking for the two writes (they are parsed at once, never wait on the
  // host); non-blocking afterwards, for event reads on the event thread.
  int ep0 = openFile(dir + "/ep0", O_RDWR, error);
  if (ep0 < 0) return nullptr;
  // Anything else would take our descriptors as plain bytes and offer no
  // events; epoll refuses regular files outright.
  struct statfs fs;
  if (fstatfs(ep0, &fs) != 0 || fs.f_type != kFunctionFsMagic) {
    error = dir + " is not a FunctionFS mount (mount -t functionfs NAME " + dir + ")";
    ::close(ep0);
    return nullptr;
  }
  if (!writeAll(ep0, blobs.descriptors, "descriptors", error) ||
      !writeAll(ep0, blobs.strings, "strings", error)) {
    ::close(ep0);
    return nullptr;
  }
  fcntl(ep0, F_SETFL, fcntl(ep0, F_GETFL) | O_NONBLOCK);
  if (!openEndpoints) return std::unique_ptr<FfsFunction>(new FfsFunction(ep0, -1, -1));
  // O_NONBLOCK on the endpoints makes AIO submission fail with EAGAIN while
  // the endpoint is disabled, instead of sleeping in io_submit until the
  // host configures us (see ffs.h).
  int out = openFile(dir + "/" + kFfsOutEndpointFile, O_RDWR | O_NONBLOCK, error);
  int in = out < 0 ? -1 : openFile(dir + "/" + kFfsInEndpointFile, O_RDWR | O_NONBLOCK, error);
  if (out < 0 || in < 0) {
    if (out >= 0) ::close(out);
    ::close(ep0);
    return nullptr;
  }
  return std::unique_ptr<FfsFunction>(new FfsFunction(ep0, out, in));
}

FfsFunction::~FfsFunction() { close(); }

bool FfsFunction::start(core::EventLoop& loop, Listener listener, std::string& error) {
  try {
    loop.add(ep0_, this, EPOLLIN);
  } catch (const std::exception& e) {
    error = e.what();
    close();
    return false;
  }
  loop_ = &loop;
  listener_ = std::move(listener);
  readEvents();  // BIND may already be waiting
  return true;
}

void FfsFunction::close() {
  if (closed_) return;
  closed_ = true;
  if (loop_) loop_->remove(ep0_);
  // Closing ep0 removes the function from the gadget: the host sees an unplug.
  if (inFd_ >= 0) ::close(inFd_);
  if (outFd_ >= 0) ::close(outFd_);
  ::close(ep0_);
  inFd_ = outFd_ = ep0_ = -1;
}

void FfsFunction::onPoll(uint32_t) {
  if (!closed_) readEvents();
}

void FfsFunction::readEvents() {
  uint8_t buf[kEventSize * kEventsPerRead];
  while (!closed_) {
    ssize_t n = ::read(ep0_, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      // EAGAIN: drained (edge-triggered, the next event raises a new edge).
      // Anything else means the function is going away; its endpoints will
      // fail on their own and end the session.
      return;
    }
    if (n == 0 || size_t(n) % kEventSize != 0) return;  // not an event stream: ignore it
    for (size_t off = 0; off < size_t(n) && !closed_; off += kEventSize) {
      const uint8_t* ev = buf + off;
      uint8_t type = ev[8];
      Event e;
      switch (type) {
        case FUNCTIONFS_BIND: e = Event::Bind; break;
        case FUNCTIONFS_UNBIND: e = Event::Unbind; break;
        case FUNCTIONFS_ENABLE: e = Event::Enable; break;
        case FUNCTIONFS_DISABLE: e = Event::Disable; break;
        case FUNCTIONFS_SUSPEND: e = Event::Suspend; break;
        case FUNCTIONFS_RESUME: e = Event::Resume; break;
        case FUNCTIONFS_SETUP: stallSetup(ev); continue;
        default: continue;  // a newer kernel's event: nothing to do
      }
      if (listener_) listener_(e, ffsEventName(e));
    }
  }
}

void FfsFunction::stallSetup(const uint8_t* setup) {
  // Only requests addressed to our interface or endpoints reach us (no
  // FUNCTIONFS_ALL_CTRL_RECIP), and the mux interface has none: stall. In
  // FunctionFS a stall is an ep0 transfer in the wrong direction: a read for
  // a device-to-host request, a write for a host-to-device one.
  uint8_t bmRequestType = setup[0];
  uint8_t bRequest = setup[1];
  ssize_t r;
  if (bmRequestType & 0x80) {
    uint8_t none;
    r = ::read(ep0_, &none, 0);
  } else {
    r = ::write(ep0_, nullptr, 0);
  }
  (void)r;  // EL2HLT is the kernel saying "stalled", as asked
  if (listener_) {
    char text[80];
    snprintf(text, sizeof text, "SETUP bmRequestType 0x%02x bRequest 0x%02x: stalled", bmRequestType,
             bRequest);
    listener_(Event::Setup, text);
  }
}

uint16_t FfsFunction::currentMaxPacketSize(uint16_t fallback) const {
  // FUNCTIONFS_ENDPOINT_DESC hands back the descriptor for the speed the
  // gadget runs at. Validate it before believing it.
  uint8_t desc[16] = {};
  static_assert(sizeof(usb_endpoint_descriptor) <= sizeof desc, "endpoint descriptor size");
  if (outFd_ < 0 || ioctl(outFd_, FUNCTIONFS_ENDPOINT_DESC, desc) != 0) return fallback;
  if (desc[0] < 7 || desc[1] != 5) return fallback;
  uint16_t mps = uint16_t(desc[4] | (desc[5] << 8)) & 0x7ff;
  return mps >= 8 ? mps : fallback;
}

}  // namespace tsmuxd::usb
