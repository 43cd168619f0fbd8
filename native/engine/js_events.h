#pragma once
// Hands the event thread's events to JS in batches: one wakeup per loop turn
// at most, however many events the turn produced, through one typed
// thread-safe function. No JS runs per packet.
//
// A connection's close and a device's log line are lazy: JS only keeps
// books with them, so they wake it only after kLazyFlushMs, and ride along
// with any earlier wakeup. A Connect cycle (the client arrives, the device
// logs its new session, the connection closes) then wakes JS once instead of
// three times; each wakeup is a context switch and a JS entry, about a third
// of the daemon's CPU per Connect.
#include <napi.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "core/event_loop.h"
#include "engine/events.h"
#include "core/stats.h"

namespace tsmuxd::engine {

class JsEventQueue : public EventSink, public core::Deferred {
 public:
  // The longest a lazy event waits for a wakeup of its own.
  static constexpr uint64_t kLazyFlushMs = 50;

  using Converter = Napi::Value (*)(Napi::Env, const NativeEvent&);

  // The queue frees itself when the thread-safe function is finalized, which
  // may be after the engine is gone.
  static JsEventQueue* create(Napi::Env env, Napi::Function callback, Converter convert);

  void bind(core::EventLoop* loop, EngineStats* stats) {
    loop_ = loop;
    stats_ = stats;
  }
  void emit(NativeEvent ev) override;  // event thread
  void runDeferred() override;         // event thread, end of turn
  // JS thread, after the event thread has stopped: deliver the rest, let go.
  void close(Napi::Env env);
  void ref(Napi::Env env) { tsfn_.Ref(env); }
  void unref(Napi::Env env) { tsfn_.Unref(env); }

 private:
  static void callJs(Napi::Env env, Napi::Function callback, JsEventQueue* self, void* unused);
  static void finalize(Napi::Env env, void* data, JsEventQueue* self);
  void deliver(Napi::Env env, Napi::Function callback);
  static bool lazy(const NativeEvent& ev);
  void wake();  // event thread, or JS thread once it has stopped

  using Tsfn = Napi::TypedThreadSafeFunction<JsEventQueue, void, callJs>;
  Tsfn tsfn_;
  Converter convert_ = nullptr;
  core::EventLoop* loop_ = nullptr;
  EngineStats* stats_ = nullptr;
  std::vector<NativeEvent> turn_;  // event thread only
  core::EventLoop::TimerId lazyTimer_ = 0;  // event thread only; 0: none armed
  std::mutex mutex_;
  std::vector<NativeEvent> ready_;
  std::atomic<bool> wakePending_{false};
  bool closed_ = false;
};

}  // namespace tsmuxd::engine
