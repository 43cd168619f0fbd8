#pragma once
// The data plane's event thread: one epoll set, timers, work posted from the
// JS thread, and end-of-turn tasks. Everything registered with a loop is used
// only on its thread, so the data path needs no locks.
//
// Object lifetime on the event thread (the rule every owner relies on):
//  - A turn is: epoll batch, posted work, due timers, deferred work, then the
//    retired objects are freed. Nothing is freed in the middle of a turn.
//  - An owner that drops an object mid-turn hands it to the loop: retire()
//    for a shared_ptr, or make it with makeRetiring(), whose deleter does the
//    same by itself whenever the last reference goes on the loop thread. So a
//    handler may drop its own transport from inside that transport's
//    callback: the transport is closed now and freed after the turn.
//  - Even an object freed outright cannot be reached: epoll events carry a
//    registration id, never a pointer, and ~Pollable() forgets its ids, so
//    the rest of the batch skips it; ~Deferred() takes it out of both the
//    pending list and the batch being run.
//  - Lock order: postMutex_ is the only lock, taken alone, never while
//    calling out.
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

namespace tsmuxd::core {

class CaptureTap;
class EventLoop;
// Drives a loop's turns by hand, with no thread or epoll (the fuzz harnesses
// in test/fuzz/native/); defined there, never in the addon.
class LoopDriver;

// Something with an fd in the epoll set. Registration is edge-triggered: a
// Pollable remembers readiness itself and clears it on EAGAIN.
class Pollable {
 public:
  Pollable() = default;
  Pollable(const Pollable&) = delete;
  Pollable& operator=(const Pollable&) = delete;
  virtual ~Pollable();
  virtual void onPoll(uint32_t events) = 0;
  bool closed() const { return closed_; }

 protected:
  bool closed_ = false;

 private:
  friend class EventLoop;
  EventLoop* pollLoop_ = nullptr;
  std::vector<uint64_t> pollIds_;  // registrations of this object's fds
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
  bool onLoopThread() const { return std::this_thread::get_id() == threadId_.load(std::memory_order_acquire); }

  // Thread-safe: runs `fn` on the loop thread.
  void post(std::function<void()> fn);

  // Loop thread. Edge-triggered unless `edge` is false. Level triggering is
  // for fds whose owner may leave readiness unconsumed (libusb reaps at most
  // 26 URBs per fd per call): epoll then reports them again next turn.
  void add(int fd, Pollable* p, uint32_t events, bool edge = true);
  void remove(int fd);

  TimerId addTimer(uint64_t delayMs, std::function<void()> fn);
  void cancelTimer(TimerId id);

  void defer(Deferred* d);
  void cancelDeferred(Deferred* d);

  // Keeps an object alive until the end of the turn, so that whatever this
  // turn still does with it (the rest of its own callback, events already
  // fetched for it) finds a closed object rather than freed memory.
  void retire(std::shared_ptr<void> obj);

  // A shared_ptr whose last release on the loop thread retires the object
  // instead of deleting it in place; elsewhere (the JS thread after stop())
  // it is deleted at once. The loop must outlive it.
  template <class T, class... Args>
  std::shared_ptr<T> makeRetiring(Args&&... args) {
    return std::shared_ptr<T>(new T(std::forward<Args>(args)...), RetiringDelete<T>{this});
  }

  static uint64_t nowMs();
  static uint64_t nowUs();

  // The capture tap while a capture runs, else null (core/capture_tap.h):
  // the data path's one test. Set and read on the loop thread only.
  CaptureTap* captureTap() const { return captureTap_; }
  void setCaptureTap(CaptureTap* tap) { captureTap_ = tap; }

 private:
  friend class LoopDriver;
  friend class Pollable;

  template <class T>
  struct RetiringDelete {
    EventLoop* loop;
    void operator()(T* p) const {
      if (loop->onLoopThread()) loop->retire(std::shared_ptr<void>(p, [](void* q) { delete static_cast<T*>(q); }));
      else delete p;
    }
  };

  struct Registration {
    Pollable* owner;
    int fd;
  };

  void run();
  void runPosted();
  void runTimers();
  void runDeferred();
  // Frees what retire() holds, including what those objects retire as they go.
  void freeRetired();
  void forget(Pollable* p);
  int nextTimeoutMs() const;

  int epfd_ = -1;
  int wakefd_ = -1;
  std::thread thread_;
  // Written by the loop thread as it starts, read by any thread.
  std::atomic<std::thread::id> threadId_{};
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

  // Registration ids are never reused: an event fetched for a registration
  // that is gone finds no entry and is dropped.
  std::unordered_map<uint64_t, Registration> registrations_;
  std::unordered_map<int, uint64_t> registrationByFd_;
  uint64_t nextRegistration_ = 1;

  std::vector<Deferred*> deferred_;
  // The round of deferred work being run; a Deferred destroyed meanwhile is
  // nulled here as well as in deferred_.
  std::vector<Deferred*> deferredBatch_;
  std::vector<std::shared_ptr<void>> graveyard_;
  CaptureTap* captureTap_ = nullptr;
};

}  // namespace tsmuxd::core
