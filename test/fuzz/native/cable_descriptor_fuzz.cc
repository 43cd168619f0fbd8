// Fuzzes the virtual cable's descriptor parser (native/usb/cable_descriptor.*),
// the first bytes a cable peer sends. A descriptor it accepts must respect
// every limit and encode back to exactly the input: the format has one
// spelling per descriptor, so anything else means a field was misread.
#include <cstring>
#include <vector>

#include "fuzz_check.h"
#include "usb/cable_descriptor.h"

using namespace tsmuxd;
using namespace tsmuxd::usb;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> in(data, data + size);  // exact size: overreads are ASan reports
  CableDescriptor d;
  Fault f = decodeCableDescriptor(in.data(), in.size(), d);
  if (f) {
    FUZZ_CHECK(std::strcmp(f.code, codes::kBadDescriptor) == 0, "fault code %s", f.code);
    return 0;
  }
  FUZZ_CHECK(d.speed >= 1 && d.speed <= 5, "speed %u", d.speed);
  FUZZ_CHECK(d.serial.size() <= kMaxSerialLength, "serial of %zu bytes", d.serial.size());
  for (char c : d.serial) FUZZ_CHECK(c >= 0x20 && c <= 0x7e, "serial byte 0x%02x", uint8_t(c));
  FUZZ_CHECK(d.configurations.size() <= kMaxConfigurations, "%zu configurations",
             d.configurations.size());
  for (const auto& c : d.configurations) {
    FUZZ_CHECK(c.value != 0, "configuration value 0 accepted");
    FUZZ_CHECK(c.interfaces.size() <= kMaxInterfaces, "%zu interfaces", c.interfaces.size());
    for (const auto& i : c.interfaces) {
      FUZZ_CHECK(i.endpoints.size() <= kMaxEndpoints, "%zu endpoints", i.endpoints.size());
    }
  }
  std::vector<uint8_t> again = encodeCableDescriptor(d);
  FUZZ_CHECK(again == in, "re-encoded descriptor differs (%zu vs %zu bytes)", again.size(),
             in.size());
  CableDescriptor d2;
  FUZZ_CHECK(!decodeCableDescriptor(again.data(), again.size(), d2), "re-encoding rejected");
  return 0;
}
