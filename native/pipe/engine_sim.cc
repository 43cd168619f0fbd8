// The engine's part in the simulated phone beyond the device role: its
// measuring services, in C++ so that no JS runs on their data path.
#include "pipe/engine.h"

namespace tsmuxd::pipe {

std::string Engine::startTestService(sim::TestServiceKind kind, const std::string& path, std::string& error) {
  std::string address;
  std::shared_ptr<sim::TestServiceListener> service = sim::TestServiceListener::open(loop_, kind, path, address, error);
  if (!service) return std::string();
  loop_.post([this, service] {
    testServices_.push_back(service);
    service->start();
  });
  return address;
}

}  // namespace tsmuxd::pipe
