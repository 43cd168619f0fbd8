#include "core/event_loop.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace tsmuxd::core {

namespace {
// epoll data of the wake fd; registration ids start at 1.
constexpr uint64_t kWakeId = 0;
}  // namespace

Pollable::~Pollable() {
  if (pollLoop_) pollLoop_->forget(this);
}

Deferred::~Deferred() {
  if (deferLoop_) deferLoop_->cancelDeferred(this);
}

EventLoop::EventLoop() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd_ < 0 || wakefd_ < 0) throw std::runtime_error("cannot create the event loop");
  struct epoll_event ev {};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
}

EventLoop::~EventLoop() {
  if (thread_.joinable()) stop(nullptr);
  freeRetired();
  // Whatever is still registered outlives us: it must not call back.
  for (auto& r : registrations_) {
    r.second.owner->pollLoop_ = nullptr;
    r.second.owner->pollIds_.clear();
  }
  for (Deferred* d : deferred_) {
    if (d) d->deferLoop_ = nullptr;
  }
  close(epfd_);
  close(wakefd_);
}

void EventLoop::start(const char* threadName) {
  running_ = true;
  thread_ = std::thread([this, threadName] {
    threadId_.store(std::this_thread::get_id(), std::memory_order_release);
    pthread_setname_np(pthread_self(), threadName);
    run();
  });
  // onLoopThread() must be right from the first post() on.
  while (threadId_.load(std::memory_order_acquire) == std::thread::id()) std::this_thread::yield();
}

void EventLoop::stop(std::function<void()> onStop) {
  if (!thread_.joinable()) return;
  post([this, onStop = std::move(onStop)] {
    if (onStop) onStop();
    running_ = false;
  });
  thread_.join();
  freeRetired();
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(postMutex_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  ssize_t r = write(wakefd_, &one, sizeof one);
  (void)r;  // EAGAIN means a wake is already pending
}

void EventLoop::add(int fd, Pollable* p, uint32_t events, bool edge) {
  uint64_t id = nextRegistration_++;
  struct epoll_event ev {};
  ev.events = edge ? events | EPOLLET : events;
  ev.data.u64 = id;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    throw std::runtime_error(std::string("epoll_ctl ADD failed: ") + strerror(errno));
  }
  registrations_[id] = Registration{p, fd};
  registrationByFd_[fd] = id;
  p->pollLoop_ = this;
  p->pollIds_.push_back(id);
}

void EventLoop::remove(int fd) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  auto byFd = registrationByFd_.find(fd);
  if (byFd == registrationByFd_.end()) return;
  auto reg = registrations_.find(byFd->second);
  if (reg != registrations_.end()) {
    auto& ids = reg->second.owner->pollIds_;
    ids.erase(std::remove(ids.begin(), ids.end(), byFd->second), ids.end());
    registrations_.erase(reg);
  }
  registrationByFd_.erase(byFd);
}

void EventLoop::forget(Pollable* p) {
  // The owner did not remove() its fd (or has not yet closed it): its events
  // still arrive, and must find nothing.
  for (uint64_t id : p->pollIds_) {
    auto reg = registrations_.find(id);
    if (reg == registrations_.end()) continue;
    auto byFd = registrationByFd_.find(reg->second.fd);
    if (byFd != registrationByFd_.end() && byFd->second == id) {
      epoll_ctl(epfd_, EPOLL_CTL_DEL, reg->second.fd, nullptr);
      registrationByFd_.erase(byFd);
    }
    registrations_.erase(reg);
  }
  p->pollIds_.clear();
  p->pollLoop_ = nullptr;
}

void EventLoop::retire(std::shared_ptr<void> obj) {
  if (obj) graveyard_.push_back(std::move(obj));
}

void EventLoop::freeRetired() {
  while (!graveyard_.empty()) {
    std::vector<std::shared_ptr<void>> dead;
    dead.swap(graveyard_);
    dead.clear();  // may retire more: the next round frees those
  }
}

uint64_t EventLoop::nowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

uint64_t EventLoop::nowUs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000 + uint64_t(ts.tv_nsec) / 1000;
}

EventLoop::TimerId EventLoop::addTimer(uint64_t delayMs, std::function<void()> fn) {
  TimerId id = nextTimer_++;
  uint64_t due = nowMs() + delayMs;
  timers_.emplace(id, Timer{due, std::move(fn)});
  timerOrder_.emplace(due, id);
  return id;
}

void EventLoop::cancelTimer(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  auto range = timerOrder_.equal_range(it->second.due);
  for (auto o = range.first; o != range.second; ++o) {
    if (o->second == id) {
      timerOrder_.erase(o);
      break;
    }
  }
  timers_.erase(it);
}

void EventLoop::defer(Deferred* d) {
  if (d->deferLoop_) return;
  d->deferLoop_ = this;
  deferred_.push_back(d);
}

void EventLoop::cancelDeferred(Deferred* d) {
  if (d->deferLoop_ != this) return;
  d->deferLoop_ = nullptr;
  std::replace(deferred_.begin(), deferred_.end(), d, static_cast<Deferred*>(nullptr));
  std::replace(deferredBatch_.begin(), deferredBatch_.end(), d, static_cast<Deferred*>(nullptr));
}

int EventLoop::nextTimeoutMs() const {
  if (!deferred_.empty()) return 0;
  if (timerOrder_.empty()) return -1;
  uint64_t now = nowMs();
  uint64_t due = timerOrder_.begin()->first;
  return due <= now ? 0 : int(std::min<uint64_t>(due - now, 60000));
}

void EventLoop::runPosted() {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> lock(postMutex_);
    work.swap(posted_);
  }
  for (auto& fn : work) fn();
}

void EventLoop::runTimers() {
  uint64_t now = nowMs();
  while (!timerOrder_.empty() && timerOrder_.begin()->first <= now) {
    TimerId id = timerOrder_.begin()->second;
    timerOrder_.erase(timerOrder_.begin());
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;
    std::function<void()> fn = std::move(it->second.fn);
    timers_.erase(it);
    fn();
  }
}

void EventLoop::runDeferred() {
  // Deferred work may defer more work (a flush that emits an event), so run a
  // few rounds; what is still left waits for the next turn, after epoll has
  // been polled again. A reader that always has more must not starve the rest.
  constexpr int kRounds = 4;
  for (int round = 0; round < kRounds && !deferred_.empty(); ++round) {
    deferredBatch_.clear();
    deferredBatch_.swap(deferred_);
    // Indexed, not iterated: cancelDeferred() writes into the batch.
    for (size_t i = 0; i < deferredBatch_.size(); ++i) {
      Deferred* d = deferredBatch_[i];
      if (!d) continue;
      deferredBatch_[i] = nullptr;
      d->deferLoop_ = nullptr;
      d->runDeferred();
    }
    deferredBatch_.clear();
  }
}

void EventLoop::run() {
  constexpr int kMaxEvents = 256;
  struct epoll_event events[kMaxEvents];
  while (running_) {
    int n = epoll_wait(epfd_, events, kMaxEvents, nextTimeoutMs());
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      uint64_t id = events[i].data.u64;
      if (id == kWakeId) {
        uint64_t count;
        ssize_t r = read(wakefd_, &count, sizeof count);
        (void)r;
        continue;
      }
      // Looked up per event: an earlier handler of this batch may have
      // removed or destroyed it.
      auto reg = registrations_.find(id);
      if (reg == registrations_.end()) continue;
      Pollable* p = reg->second.owner;
      if (!p->closed()) p->onPoll(events[i].events);
    }
    runPosted();
    runTimers();
    runDeferred();
    freeRetired();
  }
  runDeferred();
  freeRetired();
}

}  // namespace tsmuxd::core
