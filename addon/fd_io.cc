#include "fd_io.h"

#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstring>
#include <string>

#include "args.h"
#include "debug_log.h"
#include "errors.h"
#include "fd_args.h"
#include "retry_eintr.h"

namespace xpci {
namespace {

const std::string kNoPath;

unsigned RegisterWidthArg(const Site& site, const Napi::Value& value) {
  if (value.IsNumber()) {
    double width = value.As<Napi::Number>().DoubleValue();
    if (width == 1 || width == 2 || width == 4 || width == 8) return static_cast<unsigned>(width);
  }
  ThrowCheck(site.env, EINVAL, site.op, site.path, "width must be 1, 2, 4 or 8");
}

}  // namespace

// One pread of exactly `width` bytes: the kernel's VFIO region handlers turn it into one access.
Napi::Value FdReadRegister(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "pread", kNoPath};
  int fd = FdArg(site, info[0]);
  uint64_t offset = U64Arg(site, info[1], "offset");
  unsigned width = RegisterWidthArg(site, info[2]);
  uint8_t bytes[8] = {};
  ssize_t n = RetryEintr([&] { return ::pread(fd, bytes, width, static_cast<off_t>(offset)); });
  if (n < 0) {
    int err = errno;
    XPCI_LOG("pread fd=%d off=0x%" PRIx64 " width=%u -> %s", fd, offset, width, ErrnoName(err));
    ThrowErrno(env, err, "pread", kNoPath, "fd " + std::to_string(fd));
  }
  if (static_cast<unsigned>(n) != width) ThrowShort(env, "pread", kNoPath, "bytesRead", n, width, offset);
  uint64_t value = 0;
  for (unsigned i = 0; i < width; i++) value |= static_cast<uint64_t>(bytes[i]) << (8 * i);  // little-endian
  XPCI_LOG("pread fd=%d off=0x%" PRIx64 " width=%u -> 0x%" PRIx64, fd, offset, width, value);
  return Napi::BigInt::New(env, value);
}

void FdWriteRegister(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "pwrite", kNoPath};
  int fd = FdArg(site, info[0]);
  uint64_t offset = U64Arg(site, info[1], "offset");
  unsigned width = RegisterWidthArg(site, info[2]);
  uint64_t value = BigValueArg(site, info[3]);
  if (width < 8 && (value >> (8 * width)) != 0) ThrowCheck(env, ERANGE, "pwrite", kNoPath, "value does not fit in width");
  uint8_t bytes[8];
  for (unsigned i = 0; i < width; i++) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  ssize_t n = RetryEintr([&] { return ::pwrite(fd, bytes, width, static_cast<off_t>(offset)); });
  if (n < 0) {
    int err = errno;
    XPCI_LOG("pwrite fd=%d off=0x%" PRIx64 " width=%u -> %s", fd, offset, width, ErrnoName(err));
    ThrowErrno(env, err, "pwrite", kNoPath, "fd " + std::to_string(fd));
  }
  if (static_cast<unsigned>(n) != width) ThrowShort(env, "pwrite", kNoPath, "bytesWritten", n, width, offset);
  XPCI_LOG("pwrite fd=%d off=0x%" PRIx64 " width=%u value=0x%" PRIx64, fd, offset, width, value);
}

void CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(Site{env, "close", kNoPath}, info[0]);
  // Never retried: after EINTR the fd is already gone on Linux.
  if (::close(fd) != 0) ThrowErrno(env, errno, "close", kNoPath, "fd " + std::to_string(fd));
  XPCI_LOG("close fd=%d", fd);
}

}  // namespace xpci
