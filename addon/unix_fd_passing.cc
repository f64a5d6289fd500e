#include "unix_fd_passing.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "args.h"
#include "debug_log.h"
#include "errors.h"
#include "retry_eintr.h"

namespace xpci {
namespace {

// The most fds one message may carry here (vfio-user's max_msg_fds is advertised at or below it).
constexpr size_t kMaxFds = 64;

std::vector<int> FdListArg(const Site& site, const Napi::Value& value) {
  if (!value.IsArray()) ThrowCheck(site.env, EINVAL, site.op, site.path, "fds must be an array of integers");
  Napi::Array array = value.As<Napi::Array>();
  if (array.Length() > kMaxFds) ThrowCheck(site.env, E2BIG, site.op, site.path, "more than 64 fds in one message");
  std::vector<int> fds;
  for (uint32_t i = 0; i < array.Length(); i++) {
    fds.push_back(static_cast<int>(IntegerArg(site, array.Get(i), "fd", INT_MAX)));
  }
  return fds;
}

}  // namespace

Napi::Value SendWithFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Site site{env, "sendmsg", ""};
  int fd = static_cast<int>(IntegerArg(site, info[0], "fd", INT_MAX));
  if (!info[1].IsBuffer()) ThrowCheck(env, EINVAL, "sendmsg", "", "data must be a Buffer");
  Napi::Buffer<uint8_t> data = info[1].As<Napi::Buffer<uint8_t>>();
  std::vector<int> fds = FdListArg(site, info[2]);
  if (data.Length() == 0) ThrowCheck(env, EINVAL, "sendmsg", "", "data must not be empty (fds travel with a byte)");

  struct iovec iov {data.Data(), data.Length()};
  struct msghdr message {};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    struct cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t sent = RetryEintr([&] { return ::sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL); });
  if (sent < 0) {
    int err = errno;
    XPCI_LOG("sendmsg fd=%d bytes=%zu fds=%zu -> %s", fd, data.Length(), fds.size(), ErrnoName(err));
    ThrowErrno(env, err, "sendmsg", "", "fd " + std::to_string(fd));
  }
  XPCI_LOG("sendmsg fd=%d bytes=%zu fds=%zu -> %zd", fd, data.Length(), fds.size(), sent);
  return Napi::Number::New(env, static_cast<double>(sent));
}

Napi::Value ReceiveWithFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Site site{env, "recvmsg", ""};
  int fd = static_cast<int>(IntegerArg(site, info[0], "fd", INT_MAX));
  if (!info[1].IsBuffer()) ThrowCheck(env, EINVAL, "recvmsg", "", "buffer must be a Buffer");
  Napi::Buffer<uint8_t> buffer = info[1].As<Napi::Buffer<uint8_t>>();
  size_t maxFds = static_cast<size_t>(IntegerArg(site, info[2], "maxFds", kMaxFds));
  if (buffer.Length() == 0) ThrowCheck(env, EINVAL, "recvmsg", "", "buffer must not be empty");

  std::vector<char> control(CMSG_SPACE(sizeof(int) * (maxFds == 0 ? 1 : maxFds)), 0);
  struct iovec iov {buffer.Data(), buffer.Length()};
  struct msghdr message {};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  ssize_t received = RetryEintr([&] { return ::recvmsg(fd, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); });
  if (received < 0) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return env.Null();
    XPCI_LOG("recvmsg fd=%d -> %s", fd, ErrnoName(err));
    ThrowErrno(env, err, "recvmsg", "", "fd " + std::to_string(fd));
  }
  std::vector<int> fds;
  for (struct cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* at = CMSG_DATA(header);
    for (size_t i = 0; i < count; i++) {
      int received_fd;
      std::memcpy(&received_fd, at + i * sizeof(int), sizeof(int));
      fds.push_back(received_fd);
    }
  }
  // More fds than maxFds: the kernel closed the excess and set MSG_CTRUNC; the caller must know.
  bool truncated = (message.msg_flags & MSG_CTRUNC) != 0;
  XPCI_LOG("recvmsg fd=%d -> %zd bytes, %zu fds%s", fd, received, fds.size(), truncated ? " (truncated)" : "");

  Napi::Object result = Napi::Object::New(env);
  result.Set("bytes", Napi::Number::New(env, static_cast<double>(received)));
  Napi::Array fdArray = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); i++) fdArray.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
  result.Set("fds", fdArray);
  result.Set("fdsTruncated", Napi::Boolean::New(env, truncated));
  return result;
}

Napi::Value DuplicateFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(IntegerArg(Site{env, "fcntl", ""}, info[0], "fd", INT_MAX));
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) ThrowErrno(env, errno, "fcntl", "", "F_DUPFD_CLOEXEC of fd " + std::to_string(fd));
  return Napi::Number::New(env, copy);
}

Napi::Value ConnectUnixStream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(Site{env, "connect", ""}, info[0]);
  struct sockaddr_un address {};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) ThrowCheck(env, ENAMETOOLONG, "connect", path, "socket path too long");
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket", path, "");
  // Blocking connect (a Unix socket answers at once or fails), then non-blocking for recvmsg/sendmsg.
  if (RetryEintr([&] { return ::connect(fd, reinterpret_cast<struct sockaddr*>(&address), sizeof address); }) != 0 ||
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
    int err = errno;
    ::close(fd);
    ThrowErrno(env, err, "connect", path, "");
  }
  return Napi::Number::New(env, fd);
}

struct ReadableWatcher::Poll {
  uv_poll_t handle;
  napi_env env;
  Napi::FunctionReference callback;
};

namespace {

void OnPollClosed(uv_handle_t* handle) { delete static_cast<ReadableWatcher::Poll*>(handle->data); }

}  // namespace

Napi::Function ReadableWatcher::Class(Napi::Env env) {
  return DefineClass(env, "ReadableWatcher", {InstanceMethod<&ReadableWatcher::Stop>("stop")});
}

ReadableWatcher::ReadableWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ReadableWatcher>(info) {}

ReadableWatcher::~ReadableWatcher() { StopPolling(); }

Napi::Value ReadableWatcher::Watch(const Napi::CallbackInfo& info, Napi::FunctionReference& cls) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(IntegerArg(Site{env, "uv_poll_init", ""}, info[0], "fd", INT_MAX));
  if (!info[1].IsFunction()) ThrowCheck(env, EINVAL, "uv_poll_init", "", "callback must be a function");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    ThrowCheck(env, EINVAL, "uv_poll_init", "", "no event loop");
  }
  Napi::Object object = cls.New({});
  ReadableWatcher* watcher = ReadableWatcher::Unwrap(object);
  auto* poll = new Poll();
  poll->env = env;
  poll->callback = Napi::Persistent(info[1].As<Napi::Function>());
  poll->handle.data = poll;
  int err = uv_poll_init(loop, &poll->handle, fd);
  if (err != 0) {
    delete poll;
    ThrowErrno(env, -err, "uv_poll_init", "", "fd " + std::to_string(fd));
  }
  err = uv_poll_start(&poll->handle, UV_READABLE | UV_DISCONNECT, [](uv_poll_t* handle, int status, int) {
    auto* self = static_cast<Poll*>(handle->data);
    Napi::Env callbackEnv(self->env);
    Napi::HandleScope scope(callbackEnv);
    if (status < 0) uv_poll_stop(handle);  // the fd is gone or broken: one last call, then quiet
    try {
      Napi::AsyncContext context(callbackEnv, "xpci:readable");
      self->callback.MakeCallback(callbackEnv.Global(), {}, context);
    } catch (const Napi::Error& error) {
      napi_fatal_exception(self->env, error.Value());
    }
  });
  if (err != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&poll->handle), OnPollClosed);
    ThrowErrno(env, -err, "uv_poll_start", "", "fd " + std::to_string(fd));
  }
  watcher->poll_ = poll;
  XPCI_LOG("watching fd=%d for readability", fd);
  return object;
}

void ReadableWatcher::Stop(const Napi::CallbackInfo&) { StopPolling(); }

void ReadableWatcher::StopPolling() {
  if (poll_ == nullptr) return;
  uv_poll_stop(&poll_->handle);
  poll_->callback.Reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_->handle), OnPollClosed);
  poll_ = nullptr;
}

}  // namespace xpci
