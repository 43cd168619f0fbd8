#pragma once
// The sim's measuring services (echo, sink, source) as the device role's
// in-process services: a device port mapped to one is served on the event
// thread by a BuiltinServiceIo, with no socket and no JS on its data path.
#include <memory>

#include "engine/device_role.h"
#include "sim/measuring.h"

namespace tsmuxd::sim {

class MeasuringService : public engine::InProcessService {
 public:
  explicit MeasuringService(TestServiceKind kind) : kind_(kind) {}
  void serve(core::EventLoop& loop, const std::shared_ptr<mux::Connection>& conn) override;

 private:
  TestServiceKind kind_;
};

}  // namespace tsmuxd::sim
