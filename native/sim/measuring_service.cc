#include "sim/measuring_service.h"

#include "sim/builtin_io.h"

namespace tsmuxd::sim {

void MeasuringService::serve(core::EventLoop& loop, const std::shared_ptr<mux::Connection>& conn) {
  auto io = loop.makeRetiring<BuiltinServiceIo>(loop, kind_);
  conn->setIo(io);
  io->start(conn.get());
}

}  // namespace tsmuxd::sim
