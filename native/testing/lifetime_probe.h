#pragma once
// Native checks of the event loop's lifetime rules (core/event_loop.h), run
// on a real loop thread with real cables. Each destroys something at the
// moment the old convention got wrong; under ASan (npm run test:asan) a
// use-after-free aborts the process, and without it the checks still see
// a callback that ran when it must not have.
#include <string>
#include <vector>

namespace tsmuxd::testing {

struct ProbeResult {
  std::string name;
  bool ok = false;
  std::string detail;
};

std::vector<ProbeResult> runLifetimeProbes();

}  // namespace tsmuxd::testing
