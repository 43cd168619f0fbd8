#include "testing/lifetime_probe.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "core/buffers.h"
#include "core/event_loop.h"
#include "core/stats.h"
#include "usb/cable.h"

namespace tsmuxd::testing {

namespace {

// A cable that tells when it is really freed.
class ProbeCable : public usb::CableTransport {
 public:
  ProbeCable(core::EventLoop& loop, core::BufferPool& pool, EngineStats& stats, int fd, bool* freed)
      : CableTransport(loop, pool, stats, fd), freed_(freed) {}
  ~ProbeCable() override { *freed_ = true; }

 private:
  bool* freed_;
};

class Handler : public usb::TransportHandler {
 public:
  std::function<void(const uint8_t*, size_t)> transfer;
  void onTransfer(const uint8_t* data, size_t len) override {
    if (transfer) transfer(data, len);
  }
  void onTransferBatchEnd() override {}
  void onTransportDrained() override {}
  void onTransportClosed(const Fault&) override {}
};

class Step : public core::Deferred {
 public:
  std::function<void()> run;
  void runDeferred() override {
    if (run) run();
  }
};

// Runs `setup` on a fresh loop thread, waits until `done` is set (or 5 s),
// then stops the loop. Everything the scenario made is freed on its thread.
struct Scenario {
  core::EventLoop loop;
  core::BufferPool pool;
  EngineStats stats;
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;

  void finish() {
    std::lock_guard<std::mutex> lock(mutex);
    done = true;
    cv.notify_all();
  }

  bool run(const std::function<void()>& setup, const std::function<void()>& teardown) {
    loop.start("tsmuxd-probe");
    loop.post(setup);
    bool finished;
    {
      std::unique_lock<std::mutex> lock(mutex);
      finished = cv.wait_for(lock, std::chrono::seconds(5), [this] { return done; });
    }
    loop.stop(teardown);
    return finished;
  }
};

bool cablePair(int fds[2]) { return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0; }

void put(int fd, uint8_t byte) {
  ssize_t r = ::send(fd, &byte, 1, MSG_NOSIGNAL);
  (void)r;
}

// A handler drops the last reference to its own transport from inside that
// transport's onTransfer, with more transfers of the same batch still to
// deliver. The transport must be closed at once, freed only after the turn.
ProbeResult dropOwnTransportInCallback() {
  ProbeResult r{"a handler drops its own transport inside its callback", false, ""};
  Scenario s;
  int fds[2];
  if (!cablePair(fds)) return {r.name, false, "socketpair failed"};
  bool freed = false;
  bool freedDuringCallback = true;
  int deliveredAfterDrop = 0;
  bool dropped = false;
  Handler handler;
  std::shared_ptr<ProbeCable> cable;
  handler.transfer = [&](const uint8_t*, size_t) {
    if (dropped) {
      ++deliveredAfterDrop;
      return;
    }
    dropped = true;
    cable->close();
    cable.reset();  // the last reference, inside the cable's own deliverBatch
    freedDuringCallback = freed;
    // Checked after this turn's retired objects are freed.
    s.loop.addTimer(0, [&] { s.finish(); });
  };
  bool finished = s.run(
      [&] {
        cable = s.loop.makeRetiring<ProbeCable>(s.loop, s.pool, s.stats, fds[0], &freed);
        cable->setHandler(&handler);
        for (int i = 0; i < 4; ++i) put(fds[1], uint8_t(i));
        cable->setReading(true);
      },
      [&] { cable.reset(); });
  ::close(fds[1]);
  if (!finished) return {r.name, false, "no transfer arrived in 5 s"};
  if (freedDuringCallback) return {r.name, false, "the transport was freed inside its own callback"};
  if (!freed) return {r.name, false, "the transport was never freed"};
  if (deliveredAfterDrop) return {r.name, false, std::to_string(deliveredAfterDrop) + " transfers delivered after close()"};
  return {r.name, true, "closed at once, freed after the turn"};
}

// Two cables are readable in the same epoll batch; whichever is served first
// frees the other outright (no retire). The other's event, already fetched,
// must find nothing.
ProbeResult freePeerInSameBatch() {
  ProbeResult r{"a handler frees another transport whose event is in the same batch", false, ""};
  Scenario s;
  int a[2], b[2];
  if (!cablePair(a) || !cablePair(b)) return {r.name, false, "socketpair failed"};
  bool freedA = false, freedB = false;
  int served = 0;
  Handler ha, hb;
  std::unique_ptr<ProbeCable> cableA, cableB;
  ha.transfer = [&](const uint8_t*, size_t) {
    ++served;
    cableB.reset();
    s.loop.addTimer(0, [&] { s.finish(); });
  };
  hb.transfer = [&](const uint8_t*, size_t) {
    ++served;
    cableA.reset();
    s.loop.addTimer(0, [&] { s.finish(); });
  };
  bool finished = s.run(
      [&] {
        cableA = std::make_unique<ProbeCable>(s.loop, s.pool, s.stats, a[0], &freedA);
        cableB = std::make_unique<ProbeCable>(s.loop, s.pool, s.stats, b[0], &freedB);
        cableA->setHandler(&ha);
        cableB->setHandler(&hb);
        // Both readable before either is asked to read: one epoll batch.
        put(a[1], 1);
        put(b[1], 2);
        cableA->setReading(true);
        cableB->setReading(true);
      },
      [&] {
        cableA.reset();
        cableB.reset();
      });
  ::close(a[1]);
  ::close(b[1]);
  if (!finished) return {r.name, false, "no transfer arrived in 5 s"};
  if (served != 1) return {r.name, false, "served " + std::to_string(served) + " cables, expected 1"};
  if (!(freedA || freedB)) return {r.name, false, "neither cable was freed"};
  return {r.name, true, "the freed cable's fetched event was dropped"};
}

// Two Deferreds run in the same round; the first frees the second outright.
ProbeResult freeDeferredInSameRound() {
  ProbeResult r{"deferred work frees deferred work queued in the same round", false, ""};
  Scenario s;
  bool secondRan = false;
  auto first = std::make_unique<Step>();
  auto second = std::make_unique<Step>();
  first->run = [&] {
    second.reset();
    s.loop.addTimer(0, [&] { s.finish(); });
  };
  second->run = [&] { secondRan = true; };
  bool finished = s.run(
      [&] {
        s.loop.defer(first.get());
        s.loop.defer(second.get());
      },
      [&] {
        first.reset();
        second.reset();
      });
  if (!finished) return {r.name, false, "the deferred work never ran"};
  if (secondRan) return {r.name, false, "the freed Deferred ran"};
  return {r.name, true, "the freed Deferred was skipped"};
}

}  // namespace

std::vector<ProbeResult> runLifetimeProbes() {
  return {dropOwnTransportInCallback(), freePeerInSameBatch(), freeDeferredInSameRound()};
}

}  // namespace tsmuxd::testing
