#include "eventfd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <string>

#include "args.h"
#include "debug_log.h"
#include "errors.h"
#include "fd_args.h"
#include "retry_eintr.h"

namespace xpci {
namespace {

const std::string kNoPath;

}  // namespace

Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  unsigned initial = info[0].IsUndefined() ? 0 : static_cast<unsigned>(IntegerArg(Site{env, "eventfd", kNoPath}, info[0], "initial", UINT_MAX));
  int fd = ::eventfd(initial, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "eventfd", kNoPath);
  XPCI_LOG("eventfd -> fd=%d", fd);
  return Napi::Number::New(env, fd);
}

Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(Site{env, "read", kNoPath}, info[0]);
  uint64_t counter = 0;
  ssize_t n = RetryEintr([&] { return ::read(fd, &counter, sizeof counter); });
  if (n < 0) {
    if (errno == EAGAIN) return env.Null();
    ThrowErrno(env, errno, "read", kNoPath, "eventfd " + std::to_string(fd));
  }
  if (n != sizeof counter) ThrowShort(env, "read", kNoPath, "bytesRead", static_cast<size_t>(n), sizeof counter, 0);
  return Napi::BigInt::New(env, counter);
}

void EventfdWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "write", kNoPath};
  int fd = FdArg(site, info[0]);
  uint64_t value = BigValueArg(site, info[1]);
  ssize_t n = RetryEintr([&] { return ::write(fd, &value, sizeof value); });
  if (n < 0) ThrowErrno(env, errno, "write", kNoPath, "eventfd " + std::to_string(fd));
  if (n != sizeof value) ThrowShort(env, "write", kNoPath, "bytesWritten", static_cast<size_t>(n), sizeof value, 0);
}

}  // namespace xpci
