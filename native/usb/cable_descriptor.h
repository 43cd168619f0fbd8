#pragma once
// The first message on a cable: the device's identity and USB descriptors, so
// that the host can choose a configuration and endpoints as it would for a
// real phone. Layout (big-endian, every length checked on parse):
//
//   "TSMXCBL1"                      8-byte magic
//   u16 idVendor, u16 idProduct, u16 bcdDevice
//   u8  speed (libusb_speed: 1 low, 2 full, 3 high, 4 super, 5 super+)
//   u8  activeConfiguration (0 = unconfigured)
//   u8  serialLength, serial bytes (printable ASCII)
//   u8  configurationCount, then per configuration:
//     u8 bConfigurationValue, u8 interfaceCount, then per interface:
//       u8 bInterfaceNumber, u8 class, u8 subclass, u8 protocol,
//       u8 endpointCount, then per endpoint:
//         u8 bEndpointAddress, u8 bmAttributes, u16 wMaxPacketSize
#include <cstdint>
#include <string>
#include <vector>

#include "core/fault.h"

namespace tsmuxd::usb {

struct EndpointDescriptor {
  uint8_t address = 0;
  uint8_t attributes = 0;
  uint16_t maxPacketSize = 0;
};

struct InterfaceDescriptor {
  uint8_t number = 0;
  uint8_t interfaceClass = 0;
  uint8_t subclass = 0;
  uint8_t protocol = 0;
  std::vector<EndpointDescriptor> endpoints;
};

struct ConfigurationDescriptor {
  uint8_t value = 0;
  std::vector<InterfaceDescriptor> interfaces;
};

struct CableDescriptor {
  uint16_t vendorId = 0;
  uint16_t productId = 0;
  uint16_t bcdDevice = 0;
  uint8_t speed = 3;
  uint8_t activeConfiguration = 0;
  std::string serial;
  std::vector<ConfigurationDescriptor> configurations;
};

constexpr char kCableMagic[] = "TSMXCBL1";
constexpr size_t kMaxSerialLength = 255;
constexpr size_t kMaxConfigurations = 16;
constexpr size_t kMaxInterfaces = 32;
constexpr size_t kMaxEndpoints = 32;

std::vector<uint8_t> encodeCableDescriptor(const CableDescriptor& d);
Fault decodeCableDescriptor(const uint8_t* data, size_t len, CableDescriptor& out);

}  // namespace tsmuxd::usb
