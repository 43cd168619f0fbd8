#include "engine/js_events.h"

namespace tsmuxd::engine {

JsEventQueue* JsEventQueue::create(Napi::Env env, Napi::Function callback, Converter convert) {
  auto* self = new JsEventQueue();
  self->convert_ = convert;
  self->tsfn_ = Tsfn::New(env, callback, "tsmuxd-events", 0, 1, self, finalize,
                          static_cast<void*>(nullptr));
  return self;
}

void JsEventQueue::finalize(Napi::Env, void*, JsEventQueue* self) { delete self; }

void JsEventQueue::emit(NativeEvent ev) {
  turn_.push_back(std::move(ev));
  if (loop_) loop_->defer(this);
}

bool JsEventQueue::lazy(const NativeEvent& ev) {
  return ev.type == NativeEvent::Type::Closed || ev.type == NativeEvent::Type::Log;
}

void JsEventQueue::runDeferred() {
  if (turn_.empty()) return;
  bool urgent = false;
  for (const auto& ev : turn_) urgent = urgent || !lazy(ev);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& ev : turn_) ready_.push_back(std::move(ev));
  }
  turn_.clear();
  if (urgent) {
    // The lazy events already queued go with this wakeup.
    if (lazyTimer_ && loop_) loop_->cancelTimer(lazyTimer_);
    lazyTimer_ = 0;
    wake();
  } else if (!lazyTimer_ && loop_) {
    lazyTimer_ = loop_->addTimer(kLazyFlushMs, [this] {
      lazyTimer_ = 0;
      wake();
    });
  }
}

void JsEventQueue::wake() {
  if (!wakePending_.exchange(true)) tsfn_.NonBlockingCall();
}

void JsEventQueue::callJs(Napi::Env env, Napi::Function callback, JsEventQueue* self, void*) {
  if (!env || !self) return;  // finalizing: nobody is listening any more
  self->wakePending_ = false;
  self->deliver(env, callback);
}

void JsEventQueue::deliver(Napi::Env env, Napi::Function callback) {
  std::vector<NativeEvent> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch.swap(ready_);
  }
  if (batch.empty()) return;
  if (stats_) {
    EngineStats::add(stats_->jsWakeups, 1);
    EngineStats::add(stats_->jsEvents, batch.size());
  }
  Napi::HandleScope scope(env);
  Napi::Array array = Napi::Array::New(env, batch.size());
  for (size_t i = 0; i < batch.size(); ++i) array.Set(uint32_t(i), convert_(env, batch[i]));
  callback.Call({array});
}

void JsEventQueue::close(Napi::Env env) {
  if (closed_) return;
  closed_ = true;
  // The event thread has stopped; what it left in its turn buffer is ours.
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& ev : turn_) ready_.push_back(std::move(ev));
  }
  turn_.clear();
  // The stopped loop never runs the lazy timer, and frees it with itself.
  lazyTimer_ = 0;
  loop_ = nullptr;
  stats_ = nullptr;
  wake();
  tsfn_.Release();
}

}  // namespace tsmuxd::engine
