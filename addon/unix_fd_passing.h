// File descriptors over Unix stream sockets (SCM_RIGHTS), which Node's `net` cannot do: vfio-user
// passes BAR fds, interrupt eventfds and guest-memory fds this way. Syscalls only.
#pragma once

#include <napi.h>

namespace xpci {

// sendWithFds(fd, data, fds): one non-blocking sendmsg of `data` with `fds` attached to its first
// byte; returns the bytes sent (may be fewer than asked; the fds went with the first byte). EAGAIN throws.
Napi::Value SendWithFds(const Napi::CallbackInfo& info);

// receiveWithFds(fd, buffer, maxFds): one non-blocking recvmsg into `buffer` (reused by the caller, so
// no allocation per message); {bytes, fds, fdsTruncated} or null when nothing is ready (EAGAIN).
// bytes 0 is end of stream. Received fds are close-on-exec.
Napi::Value ReceiveWithFds(const Napi::CallbackInfo& info);

// duplicateFd(fd): fcntl(F_DUPFD_CLOEXEC), so a connection accepted by Node can be owned here.
Napi::Value DuplicateFd(const Napi::CallbackInfo& info);

// connectUnixStream(path): a blocking connect of a new non-blocking AF_UNIX stream socket; its fd.
Napi::Value ConnectUnixStream(const Napi::CallbackInfo& info);

// ReadableWatcher: calls `callback()` on the event loop whenever `fd` is readable or hung up
// (uv_poll_t, level-triggered); stop() ends it. The fd is not owned (closing it is the caller's).
class ReadableWatcher : public Napi::ObjectWrap<ReadableWatcher> {
 public:
  static Napi::Function Class(Napi::Env env);
  // watchReadable(fd, callback)
  static Napi::Value Watch(const Napi::CallbackInfo& info, Napi::FunctionReference& cls);

  explicit ReadableWatcher(const Napi::CallbackInfo& info);
  ~ReadableWatcher() override;

  struct Poll;  // the uv_poll_t and the callback; freed when libuv has closed the handle

 private:
  void Stop(const Napi::CallbackInfo& info);
  void StopPolling();

  Poll* poll_ = nullptr;
};

}  // namespace xpci
