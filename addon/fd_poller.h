// FdPoller: a uv_poll_t on the Node event loop that calls a JS function whenever an fd is readable
// (level-triggered: the callback must drain the fd, e.g. read the eventfd). The pattern of
// serialport's bindings-cpp poller. While watching, the poller holds itself alive; close() stops it.
#pragma once

#include <napi.h>
#include <uv.h>

#include <memory>

namespace xpci {

class FdPoller : public Napi::ObjectWrap<FdPoller> {
 public:
  static Napi::Function Class(Napi::Env env);
  // watchFd(fd, callback): callback(error: string | null) on each readable event; error is libuv's
  // error name when polling failed (the poller keeps running until closed).
  static Napi::Value Start(const Napi::CallbackInfo& info, Napi::FunctionReference& cls);

  explicit FdPoller(const Napi::CallbackInfo& info);
  ~FdPoller() override;

 private:
  static void OnEvent(uv_poll_t* handle, int status, int events);
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value Active(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);
  void Stop();

  int fd_ = -1;
  uv_poll_t* handle_ = nullptr;  // freed by uv_close's callback, after the loop is done with it
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

}  // namespace xpci
