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

void JsEventQueue::runDeferred() {
  if (turn_.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& ev : turn_) ready_.push_back(std::move(ev));
  }
  turn_.clear();
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
  loop_ = nullptr;
  stats_ = nullptr;
  if (!wakePending_.exchange(true)) tsfn_.NonBlockingCall();
  tsfn_.Release();
}

}  // namespace tsmuxd::engine
