#include "usb/cable_descriptor.h"

#include <cstring>

#include "core/byte_order.h"

namespace tsmuxd::usb {

namespace {

class Writer {
 public:
  void u8(uint8_t v) { out.push_back(v); }
  void u16(uint16_t v) {
    out.push_back(uint8_t(v >> 8));
    out.push_back(uint8_t(v));
  }
  void bytes(const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
  std::vector<uint8_t> out;
};

// Reads fields off the descriptor, refusing to step past its end.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool u8(uint8_t& v) {
    if (pos_ + 1 > n_) return false;
    v = p_[pos_++];
    return true;
  }
  bool u16(uint16_t& v) {
    if (pos_ + 2 > n_) return false;
    v = core::getBe16(p_ + pos_);
    pos_ += 2;
    return true;
  }
  bool bytes(size_t n, const uint8_t*& at) {
    if (n > n_ - pos_) return false;
    at = p_ + pos_;
    pos_ += n;
    return true;
  }
  size_t remaining() const { return n_ - pos_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

Fault bad(const std::string& what) {
  return Fault(codes::kBadDescriptor, "cable descriptor: " + what);
}

}  // namespace

std::vector<uint8_t> encodeCableDescriptor(const CableDescriptor& d) {
  Writer w;
  w.bytes(kCableMagic, 8);
  w.u16(d.vendorId);
  w.u16(d.productId);
  w.u16(d.bcdDevice);
  w.u8(d.speed);
  w.u8(d.activeConfiguration);
  w.u8(uint8_t(d.serial.size()));
  w.bytes(d.serial.data(), d.serial.size());
  w.u8(uint8_t(d.configurations.size()));
  for (const auto& c : d.configurations) {
    w.u8(c.value);
    w.u8(uint8_t(c.interfaces.size()));
    for (const auto& i : c.interfaces) {
      w.u8(i.number);
      w.u8(i.interfaceClass);
      w.u8(i.subclass);
      w.u8(i.protocol);
      w.u8(uint8_t(i.endpoints.size()));
      for (const auto& e : i.endpoints) {
        w.u8(e.address);
        w.u8(e.attributes);
        w.u16(e.maxPacketSize);
      }
    }
  }
  return std::move(w.out);
}

Fault decodeCableDescriptor(const uint8_t* data, size_t len, CableDescriptor& out) {
  Reader r(data, len);
  const uint8_t* magic = nullptr;
  if (!r.bytes(8, magic) || std::memcmp(magic, kCableMagic, 8) != 0) {
    return bad("missing TSMXCBL1 magic");
  }
  uint8_t serialLen = 0, configCount = 0;
  if (!r.u16(out.vendorId) || !r.u16(out.productId) || !r.u16(out.bcdDevice) ||
      !r.u8(out.speed) || !r.u8(out.activeConfiguration) || !r.u8(serialLen)) {
    return bad("truncated device fields");
  }
  if (out.speed < 1 || out.speed > 5) return bad("speed " + std::to_string(out.speed));
  const uint8_t* serial = nullptr;
  if (!r.bytes(serialLen, serial)) return bad("truncated serial number");
  for (size_t i = 0; i < serialLen; ++i) {
    if (serial[i] < 0x20 || serial[i] > 0x7e) return bad("serial number is not printable ASCII");
  }
  out.serial.assign(reinterpret_cast<const char*>(serial), serialLen);
  if (!r.u8(configCount)) return bad("truncated configuration count");
  if (configCount > kMaxConfigurations) return bad("too many configurations");
  out.configurations.clear();
  for (size_t c = 0; c < configCount; ++c) {
    ConfigurationDescriptor config;
    uint8_t ifaceCount = 0;
    if (!r.u8(config.value) || !r.u8(ifaceCount)) return bad("truncated configuration");
    if (config.value == 0) return bad("configuration value 0 is reserved");
    if (ifaceCount > kMaxInterfaces) return bad("too many interfaces");
    for (size_t i = 0; i < ifaceCount; ++i) {
      InterfaceDescriptor iface;
      uint8_t epCount = 0;
      if (!r.u8(iface.number) || !r.u8(iface.interfaceClass) || !r.u8(iface.subclass) ||
          !r.u8(iface.protocol) || !r.u8(epCount)) {
        return bad("truncated interface");
      }
      if (epCount > kMaxEndpoints) return bad("too many endpoints");
      for (size_t e = 0; e < epCount; ++e) {
        EndpointDescriptor ep;
        if (!r.u8(ep.address) || !r.u8(ep.attributes) || !r.u16(ep.maxPacketSize)) {
          return bad("truncated endpoint");
        }
        iface.endpoints.push_back(ep);
      }
      config.interfaces.push_back(std::move(iface));
    }
    out.configurations.push_back(std::move(config));
  }
  if (r.remaining() != 0) return bad(std::to_string(r.remaining()) + " trailing bytes");
  return Fault();
}

}  // namespace tsmuxd::usb
