#include "fd_poller.h"

#include <cerrno>
#include <string>

#include "args.h"
#include "debug_log.h"
#include "errors.h"
#include "fd_args.h"

namespace xpci {
namespace {

const std::string kNoPath;

void FreeHandle(uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); }

}  // namespace

Napi::Function FdPoller::Class(Napi::Env env) {
  return DefineClass(env, "FdPoller",
                     {
                         InstanceAccessor<&FdPoller::Fd>("fd"),
                         InstanceAccessor<&FdPoller::Active>("active"),
                         InstanceMethod<&FdPoller::Close>("close"),
                     });
}

Napi::Value FdPoller::Start(const Napi::CallbackInfo& info, Napi::FunctionReference& cls) {
  Napi::Env env = info.Env();
  Site site{env, "uv_poll_start", kNoPath};
  int fd = FdArg(site, info[0]);
  if (!info[1].IsFunction()) ThrowCheck(env, EINVAL, "uv_poll_start", kNoPath, "callback must be a function");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    ThrowCheck(env, EINVAL, "uv_poll_start", kNoPath, "no event loop");
  }

  Napi::Object object = cls.New({});
  FdPoller* poller = Unwrap(object);
  auto handle = new uv_poll_t;
  int rc = uv_poll_init(loop, handle, fd);
  if (rc != 0) {
    delete handle;  // never registered with the loop
    ThrowCheck(env, -rc, "uv_poll_init", kNoPath, std::string(uv_strerror(rc)) + " (fd " + std::to_string(fd) + ")");
  }
  handle->data = poller;
  rc = uv_poll_start(handle, UV_READABLE, OnEvent);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(handle), FreeHandle);
    ThrowCheck(env, -rc, "uv_poll_start", kNoPath, std::string(uv_strerror(rc)) + " (fd " + std::to_string(fd) + ")");
  }
  poller->fd_ = fd;
  poller->handle_ = handle;
  poller->callback_ = Napi::Persistent(info[1].As<Napi::Function>());
  poller->context_ = std::make_unique<Napi::AsyncContext>(env, "xpci:FdPoller");
  poller->Ref();  // a watching poller must not be collected
  XPCI_LOG("poll fd=%d started", fd);
  return object;
}

FdPoller::FdPoller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdPoller>(info) {}

FdPoller::~FdPoller() {
  // Only reached for a stopped poller, or at environment teardown.
  if (handle_ != nullptr) {
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), FreeHandle);
    handle_ = nullptr;
  }
}

void FdPoller::OnEvent(uv_poll_t* handle, int status, int /*events*/) {
  auto* self = static_cast<FdPoller*>(handle->data);
  if (self == nullptr || self->callback_.IsEmpty()) return;
  Napi::Env env = self->Env();
  Napi::HandleScope scope(env);
  napi_value argument = status < 0 ? Napi::String::New(env, uv_err_name(status)) : env.Null();
  try {
    self->callback_.MakeCallback(self->Value(), {argument}, *self->context_);
  } catch (const Napi::Error& error) {
    // A throwing callback is an uncaught exception of the process, as for any event-loop callback.
    napi_fatal_exception(env, error.Value());
  }
}

Napi::Value FdPoller::Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }

Napi::Value FdPoller::Active(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), handle_ != nullptr);
}

void FdPoller::Close(const Napi::CallbackInfo& /*info*/) { Stop(); }

void FdPoller::Stop() {
  if (handle_ == nullptr) return;
  uv_poll_stop(handle_);
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), FreeHandle);  // the fd may be closed right after this
  handle_ = nullptr;
  XPCI_LOG("poll fd=%d stopped", fd_);
  callback_.Reset();
  // context_ lives on until the finalizer: close() may run inside the callback that still uses it.
  Unref();
}

}  // namespace xpci
