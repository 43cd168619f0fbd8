#include "pipe/event_loop.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace tsmuxd::pipe {

Deferred::~Deferred() {
  if (deferLoop_) deferLoop_->cancelDeferred(this);
}

EventLoop::EventLoop() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epfd_ < 0 || wakefd_ < 0) throw std::runtime_error("cannot create the event loop");
  struct epoll_event ev {};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // null marks the wake fd
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
}

EventLoop::~EventLoop() {
  if (thread_.joinable()) stop(nullptr);
  close(epfd_);
  close(wakefd_);
}

void EventLoop::start(const char* threadName) {
  running_ = true;
  thread_ = std::thread([this, threadName] {
    threadId_ = std::this_thread::get_id();
    pthread_setname_np(pthread_self(), threadName);
    run();
  });
  // The thread id is read by onLoopThread(); make sure it is set.
  while (threadId_ == std::thread::id()) std::this_thread::yield();
}

void EventLoop::stop(std::function<void()> onStop) {
  if (!thread_.joinable()) return;
  post([this, onStop = std::move(onStop)] {
    if (onStop) onStop();
    running_ = false;
  });
  thread_.join();
  graveyard_.clear();
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
  struct epoll_event ev {};
  ev.events = edge ? events | EPOLLET : events;
  ev.data.ptr = p;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    throw std::runtime_error(std::string("epoll_ctl ADD failed: ") + strerror(errno));
  }
}

void EventLoop::remove(int fd) { epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

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
    std::vector<Deferred*> batch;
    batch.swap(deferred_);
    for (Deferred* d : batch) {
      if (!d) continue;
      d->deferLoop_ = nullptr;
      d->runDeferred();
    }
  }
}

void EventLoop::run() {
  constexpr int kMaxEvents = 256;
  struct epoll_event events[kMaxEvents];
  while (running_) {
    int n = epoll_wait(epfd_, events, kMaxEvents, nextTimeoutMs());
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      auto* p = static_cast<Pollable*>(events[i].data.ptr);
      if (!p) {
        uint64_t count;
        ssize_t r = read(wakefd_, &count, sizeof count);
        (void)r;
        continue;
      }
      if (!p->closed()) p->onPoll(events[i].events);
    }
    runPosted();
    runTimers();
    runDeferred();
    graveyard_.clear();
  }
  runDeferred();
  graveyard_.clear();
}

}  // namespace tsmuxd::pipe
