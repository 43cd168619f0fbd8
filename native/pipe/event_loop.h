#pragma once
// The data plane's event thread: one epoll set, timers, work posted from the
// JS thread, and end-of-turn tasks. Everything registered with a loop is used
// only on its thread, so the data path needs no locks.
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace tsmuxd::pipe {

class EventLoop;
// Drives a loop's turns by hand, with no thread or epoll (the fuzz harnesses
// in test/fuzz/native/); defined there, never in the addon.
class LoopDriver;

// Something with an fd in the epoll set. Registration is edge-triggered: a
// Pollable remembers readiness itself and clears it on EAGAIN.
class Pollable {
 public:
  virtual ~Pollable() = default;
  virtual void onPoll(uint32_t events) = 0;
  bool closed() const { return closed_; }

 protected:
  bool closed_ = false;
};

// Work that runs once at the end of the current loop turn, after every epoll
// event of that turn: flushing a transport's queue, coalescing ACKs, handing
// events to JS. Batching there is what keeps syscalls and wakeups per byte low.
class Deferred {
 public:
  virtual ~Deferred();
  virtual void runDeferred() = 0;

 private:
  friend class EventLoop;
  EventLoop* deferLoop_ = nullptr;
};

class EventLoop {
 public:
  using TimerId = uint64_t;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void start(const char* threadName);
  // Asks the thread to finish; `onStop` runs on it first. Joins.
  void stop(std::function<void()> onStop);
  bool onLoopThread() const { return std::this_thread::get_id() == threadId_; }

  // Thread-safe: runs `fn` on the loop thread.
  void post(std::function<void()> fn);

  // Edge-triggered unless `edge` is false. Level triggering is for fds whose
  // owner may leave readiness unconsumed (libusb reaps at most 26 URBs per
  // fd per call): epoll then reports them again next turn.
  void add(int fd, Pollable* p, uint32_t events, bool edge = true);
  void remove(int fd);

  TimerId addTimer(uint64_t delayMs, std::function<void()> fn);
  void cancelTimer(TimerId id);

  void defer(Deferred* d);
  void cancelDeferred(Deferred* d);

  // Keeps an object alive until the end of the turn, so that events already
  // fetched for it in this turn find a closed object rather than freed memory.
  void retire(std::shared_ptr<void> obj) { graveyard_.push_back(std::move(obj)); }

  static uint64_t nowMs();
  static uint64_t nowUs();

 private:
  friend class LoopDriver;
  void run();
  void runPosted();
  void runTimers();
  void runDeferred();
  int nextTimeoutMs() const;

  int epfd_ = -1;
  int wakefd_ = -1;
  std::thread thread_;
  std::thread::id threadId_;
  std::atomic<bool> running_{false};

  std::mutex postMutex_;
  std::vector<std::function<void()>> posted_;

  struct Timer {
    uint64_t due;
    std::function<void()> fn;
  };
  std::multimap<uint64_t, TimerId> timerOrder_;
  std::unordered_map<TimerId, Timer> timers_;
  TimerId nextTimer_ = 1;

  std::vector<Deferred*> deferred_;
  std::vector<std::shared_ptr<void>> graveyard_;
};

}  // namespace tsmuxd::pipe
