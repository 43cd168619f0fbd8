// The testing addon's `wire`: direct handles on the wire format for tests and
// benches: the packet codec, both reassemblers, the cable descriptor, and a
// raw cable end that a test drives by hand to play a hostile device or a
// careless host. RawCable.recv/accept block the calling thread in poll() for
// up to their timeout, which is why none of this is in the daemon's addon.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "mux/frame.h"
#include "mux/reassembler.h"
#include "usb/cable.h"
#include "usb/cable_descriptor.h"
#include "usb/ffs_descriptors.h"

namespace tsmuxd::addon {

namespace {

uint32_t optUint(Napi::Env env, Napi::Object o, const char* key, uint32_t max, uint32_t fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= double(max)) || d != double(uint64_t(d))) {
    throwError(env, codes::kInvalidArgument, std::string(key) + " must be an integer from 0 to " +
                                                 std::to_string(max));
  }
  return uint32_t(d);
}

Napi::Buffer<uint8_t> copyBuffer(Napi::Env env, const uint8_t* p, size_t n) {
  return Napi::Buffer<uint8_t>::Copy(env, p, n);
}

Napi::Buffer<uint8_t> argBuffer(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBuffer()) {
    throwError(info.Env(), codes::kInvalidArgument, std::string(name) + " must be a Buffer");
  }
  return info[i].As<Napi::Buffer<uint8_t>>();
}

// encodePacket({version, protocol, txSeq, rxSeq, magic, tcp, payload}) -> Buffer
Napi::Value EncodePacket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = argObject(info, 0, "packet");
  size_t hs = mux::headerSizeFor(int(optUint(env, o, "version", 2, 2)));
  mux::MuxHeader h;
  h.protocol = optUint(env, o, "protocol", UINT32_MAX, mux::kProtoTcp);
  h.magic = optUint(env, o, "magic", UINT32_MAX, mux::kMagic);
  h.txSeq = uint16_t(optUint(env, o, "txSeq", 0xFFFF, 0));
  h.rxSeq = uint16_t(optUint(env, o, "rxSeq", 0xFFFF, 0));
  std::vector<uint8_t> body;
  if (o.Get("tcp").IsObject()) {
    Napi::Object t = o.Get("tcp").As<Napi::Object>();
    mux::TcpHeader th;
    th.sport = uint16_t(optUint(env, t, "sport", 0xFFFF, 0));
    th.dport = uint16_t(optUint(env, t, "dport", 0xFFFF, 0));
    th.seq = optUint(env, t, "seq", UINT32_MAX, 0);
    th.ack = optUint(env, t, "ack", UINT32_MAX, 0);
    th.flags = uint8_t(optUint(env, t, "flags", 0xFF, mux::kAck));
    th.window = uint16_t(optUint(env, t, "window", 0xFFFF, 0));
    th.dataOffset = uint8_t(optUint(env, t, "dataOffset", 15, 5));
    body.resize(mux::kTcpHeaderSize);
    mux::writeTcpHeader(body.data(), th);
  }
  if (o.Get("payload").IsBuffer()) {
    auto p = o.Get("payload").As<Napi::Buffer<uint8_t>>();
    body.insert(body.end(), p.Data(), p.Data() + p.Length());
  }
  std::vector<uint8_t> out(hs + body.size());
  h.length = optUint(env, o, "length", UINT32_MAX, uint32_t(out.size()));
  mux::writeMuxHeader(out.data(), hs, h);
  if (!body.empty()) std::memcpy(out.data() + hs, body.data(), body.size());
  return copyBuffer(env, out.data(), out.size());
}

// decodePacket(buf, version) -> {protocol, length, magic?, txSeq?, rxSeq?, tcp?, payload}
Napi::Value DecodePacket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto buf = argBuffer(info, 0, "packet");
  size_t hs = mux::headerSizeFor(int(argUint(info, 1, "version", 2)));
  if (buf.Length() < hs) throwError(env, codes::kBadLength, "packet shorter than its header");
  mux::MuxHeader h = mux::readMuxHeader(buf.Data(), hs);
  Fault f = mux::checkHeader(h.protocol, h.length, hs);
  if (!f && h.length != buf.Length()) {
    f = Fault(codes::kBadLength, "header length " + std::to_string(h.length) + " but " +
                                     std::to_string(buf.Length()) + " bytes given");
  }
  if (f) throwError(env, f.code, f.message);
  Napi::Object o = Napi::Object::New(env);
  o.Set("protocol", h.protocol);
  o.Set("length", h.length);
  if (hs == mux::kHeaderSizeV2) {
    o.Set("magic", h.magic);
    o.Set("txSeq", h.txSeq);
    o.Set("rxSeq", h.rxSeq);
  }
  const uint8_t* body = buf.Data() + hs;
  size_t bodyLen = buf.Length() - hs;
  if (h.protocol == mux::kProtoTcp) {
    mux::TcpHeader th;
    f = mux::readTcpHeader(body, bodyLen, th);
    if (f) throwError(env, f.code, f.message);
    Napi::Object t = Napi::Object::New(env);
    t.Set("sport", th.sport);
    t.Set("dport", th.dport);
    t.Set("seq", th.seq);
    t.Set("ack", th.ack);
    t.Set("flags", th.flags);
    t.Set("window", th.window);
    o.Set("tcp", t);
    body += mux::kTcpHeaderSize;
    bodyLen -= mux::kTcpHeaderSize;
  }
  o.Set("payload", copyBuffer(env, body, bodyLen));
  return o;
}

class StreamReassemblerWrap : public Napi::ObjectWrap<StreamReassemblerWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "StreamReassembler",
                       {InstanceMethod<&StreamReassemblerWrap::feed>("feed")});
  }
  explicit StreamReassemblerWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<StreamReassemblerWrap>(info) {
    stream_.setHeaderSize(info.Length() > 0 ? argUint(info, 0, "headerSize", 16) : 16);
  }

 private:
  Napi::Value feed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto buf = argBuffer(info, 0, "transfer");
    if (dead_) throwError(env, dead_.code, "stream already failed: " + dead_.message);
    Napi::Array out = Napi::Array::New(env);
    Fault f;
    bool ok = stream_.feed(
        buf.Data(), buf.Length(),
        [&](const uint8_t* p, size_t n, bool) {
          out.Set(out.Length(), copyBuffer(env, p, n));
          return true;
        },
        f);
    if (!ok) {
      dead_ = f;
      throwError(env, f.code, f.message);
    }
    return out;
  }
  mux::StreamReassembler stream_;
  Fault dead_;
};

class MessageAssemblerWrap : public Napi::ObjectWrap<MessageAssemblerWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "MessageAssembler",
                       {InstanceMethod<&MessageAssemblerWrap::feed>("feed")});
  }
  explicit MessageAssemblerWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<MessageAssemblerWrap>(info),
        assembler_(uint16_t(argUint(info, 0, "maxPacketSize", 1024))) {}

 private:
  Napi::Value feed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto buf = argBuffer(info, 0, "transfer");
    Napi::Array messages = Napi::Array::New(env);
    Napi::Array faults = Napi::Array::New(env);
    assembler_.feed(
        buf.Data(), buf.Length(),
        [&](const uint8_t* p, size_t n, bool) { messages.Set(messages.Length(), copyBuffer(env, p, n)); },
        [&](const Fault& f) { faults.Set(faults.Length(), makeError(env, f.code, f.message)); });
    assembler_.batchEnd();  // the JS buffer is not ours to hold
    Napi::Object o = Napi::Object::New(env);
    o.Set("messages", messages);
    o.Set("faults", faults);
    return o;
  }
  mux::MessageAssembler assembler_;
};

Napi::Value EncodeDescriptor(const Napi::CallbackInfo& info) {
  usb::CableDescriptor d = descriptorFromJs(info.Env(), argObject(info, 0, "descriptor"));
  std::vector<uint8_t> bytes = usb::encodeCableDescriptor(d);
  return copyBuffer(info.Env(), bytes.data(), bytes.size());
}

Napi::Value DecodeDescriptor(const Napi::CallbackInfo& info) {
  auto buf = argBuffer(info, 0, "bytes");
  usb::CableDescriptor d;
  Fault f = usb::decodeCableDescriptor(buf.Data(), buf.Length(), d);
  if (f) throwError(info.Env(), f.code, f.message);
  return descriptorToJs(info.Env(), d);
}

// encodeFfsDescriptors(spec?) -> {descriptors, strings} (spec as in
// ffsSpecFromJs; the mux interface by default): what
// the FunctionFS transport writes to ep0, for tests to check byte by byte.
Napi::Value EncodeFfsDescriptors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  usb::FfsInterfaceSpec spec;
  if (info.Length() > 0 && !info[0].IsUndefined()) spec = ffsSpecFromJs(env, argObject(info, 0, "spec"));
  usb::FfsBlobs blobs;
  if (Fault f = usb::buildFfsBlobs(spec, blobs)) throwError(env, f.code, f.message);
  Napi::Object out = Napi::Object::New(env);
  out.Set("descriptors", copyBuffer(env, blobs.descriptors.data(), blobs.descriptors.size()));
  out.Set("strings", copyBuffer(env, blobs.strings.data(), blobs.strings.size()));
  return out;
}

// One end of a cable, driven synchronously by a test. Blocking waits are
// bounded by the caller's timeout; the engine under test runs on its own thread.
class RawCableWrap : public Napi::ObjectWrap<RawCableWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "RawCable",
                       {InstanceMethod<&RawCableWrap::send>("send"),
                        InstanceMethod<&RawCableWrap::recv>("recv"),
                        InstanceMethod<&RawCableWrap::accept>("accept"),
                        InstanceMethod<&RawCableWrap::close>("close")});
  }

  // new RawCable("connect" | "listen", path)
  explicit RawCableWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RawCableWrap>(info) {
    std::string mode = argString(info, 0, "mode");
    std::string path = argString(info, 1, "path");
    std::string error;
    if (mode == "connect") {
      fd_ = usb::CableTransport::connectPath(path, error);
    } else if (mode == "listen") {
      fd_ = usb::CableTransport::listenPath(path, error);
    } else if (mode == "fd") {
      fd_ = -1;  // filled by accept()
      return;
    } else {
      throwError(info.Env(), codes::kInvalidArgument, "mode is connect or listen");
    }
    if (fd_ < 0) throwError(info.Env(), codes::kSystem, error);
  }
  ~RawCableWrap() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void adopt(int fd) { fd_ = fd; }

 private:
  bool waitFor(short events, int timeoutMs) {
    struct pollfd p {fd_, events, 0};
    int r;
    do {
      r = poll(&p, 1, timeoutMs);
    } while (r < 0 && errno == EINTR);
    return r > 0;
  }

  Napi::Value send(const Napi::CallbackInfo& info) {
    auto buf = argBuffer(info, 0, "transfer");
    if (fd_ < 0) throwError(info.Env(), codes::kUnplugged, "cable is closed");
    for (;;) {
      ssize_t n = ::send(fd_, buf.Data(), buf.Length(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n >= 0) break;
      if (errno == EAGAIN && waitFor(POLLOUT, 5000)) continue;
      if (errno == EINTR) continue;
      throwError(info.Env(), codes::kUnplugged, std::string("cable send: ") + strerror(errno));
    }
    return info.Env().Undefined();
  }

  // recv(timeoutMs) -> Buffer (empty for a ZLP) or null on timeout.
  Napi::Value recv(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int timeout = int(argUint(info, 0, "timeoutMs", 600000));
    if (fd_ < 0) throwError(env, codes::kUnplugged, "cable is closed");
    if (!waitFor(POLLIN, timeout)) return env.Null();
    std::vector<uint8_t> buf(usb::CableTransport::kMaxTransfer);
    ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN) return env.Null();
      throwError(env, codes::kUnplugged, std::string("cable recv: ") + strerror(errno));
    }
    if (n == 0) {
      struct pollfd p {fd_, POLLRDHUP, 0};
      if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP))) {
        throwError(env, codes::kUnplugged, "the other end closed the cable");
      }
    }
    return copyBuffer(env, buf.data(), size_t(n));
  }

  // accept(timeoutMs) on a listening cable -> RawCable or null.
  Napi::Value accept(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int timeout = int(argUint(info, 0, "timeoutMs", 600000));
    if (!waitFor(POLLIN, timeout)) return env.Null();
    int fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) throwError(env, codes::kSystem, std::string("accept: ") + strerror(errno));
    usb::CableTransport::tuneSocket(fd);
    Napi::Object obj = Value().Get("constructor").As<Napi::Function>().New(
        {Napi::String::New(env, "fd"), Napi::String::New(env, "")});
    RawCableWrap::Unwrap(obj)->adopt(fd);
    return obj;
  }

  Napi::Value close(const Napi::CallbackInfo& info) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return info.Env().Undefined();
  }

  int fd_ = -1;
};

}  // namespace

void initWire(Napi::Env env, Napi::Object exports) {
  Napi::Object t = Napi::Object::New(env);
  t.Set("encodePacket", Napi::Function::New(env, EncodePacket, "encodePacket"));
  t.Set("decodePacket", Napi::Function::New(env, DecodePacket, "decodePacket"));
  t.Set("encodeCableDescriptor", Napi::Function::New(env, EncodeDescriptor, "encodeCableDescriptor"));
  t.Set("decodeCableDescriptor", Napi::Function::New(env, DecodeDescriptor, "decodeCableDescriptor"));
  t.Set("encodeFfsDescriptors", Napi::Function::New(env, EncodeFfsDescriptors, "encodeFfsDescriptors"));
  t.Set("StreamReassembler", StreamReassemblerWrap::define(env));
  t.Set("MessageAssembler", MessageAssemblerWrap::define(env));
  t.Set("RawCable", RawCableWrap::define(env));
  exports.Set("wire", t);
}

}  // namespace tsmuxd::addon
