#include "register_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <memory>

#include "args.h"
#include "debug_log.h"
#include "errors.h"
#include "retry_eintr.h"

namespace xpci {
namespace {

// Upper bound of readBlock: config space is 4 KiB; this only stops absurd allocations.
constexpr uint64_t kMaxBlock = 1 << 20;

}  // namespace

Napi::Function RegisterFile::Class(Napi::Env env) {
  return DefineClass(env, "RegisterFile",
                     {
                         InstanceAccessor<&RegisterFile::Path>("path"),
                         InstanceAccessor<&RegisterFile::Writable>("writable"),
                         InstanceAccessor<&RegisterFile::Closed>("closed"),
                         InstanceMethod<&RegisterFile::Size>("size"),
                         InstanceMethod<&RegisterFile::Read>("read"),
                         InstanceMethod<&RegisterFile::ReadBlock>("readBlock"),
                         InstanceMethod<&RegisterFile::Write>("write"),
                         InstanceMethod<&RegisterFile::Close>("close"),
                     });
}

Napi::Value RegisterFile::Open(const Napi::CallbackInfo& info, Napi::FunctionReference& cls) {
  Napi::Env env = info.Env();
  const std::string none;
  std::string path = PathArg(Site{env, "open", none}, info[0]);
  bool writable = BoolArg(Site{env, "open", path}, info[1], "writable");

  int fd = RetryEintr([&] { return ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC); });
  if (fd < 0) {
    int err = errno;
    XPCI_LOG("open %s %s -> %s", path.c_str(), writable ? "rw" : "ro", ErrnoName(err));
    ThrowErrno(env, err, "open", path);
  }
  XPCI_LOG("open %s %s -> fd=%d", path.c_str(), writable ? "rw" : "ro", fd);

  Napi::Object object;
  try {
    object = cls.New({});
  } catch (...) {
    ::close(fd);
    throw;
  }
  RegisterFile* file = Unwrap(object);
  file->path_ = path;
  file->writable_ = writable;
  file->fd_ = fd;
  return object;
}

RegisterFile::RegisterFile(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RegisterFile>(info) {}

RegisterFile::~RegisterFile() {
  if (fd_ < 0) return;
  XPCI_LOG("close fd=%d %s (garbage collected)", fd_, path_.c_str());
  ::close(fd_);
}

int RegisterFile::LiveFd(Napi::Env env, const char* op) const {
  if (fd_ < 0) ThrowCheck(env, EBADF, op, path_, "register file is closed");
  return fd_;
}

Napi::Value RegisterFile::Path(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), path_); }

Napi::Value RegisterFile::Writable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), writable_);
}

Napi::Value RegisterFile::Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), fd_ < 0); }

Napi::Value RegisterFile::Size(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = LiveFd(env, "fstat");
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    XPCI_LOG("fstat fd=%d %s -> %s", fd, path_.c_str(), ErrnoName(err));
    ThrowErrno(env, err, "fstat", path_);
  }
  XPCI_LOG("fstat fd=%d %s -> size=%lld", fd, path_.c_str(), static_cast<long long>(st.st_size));
  return Napi::Number::New(env, static_cast<double>(st.st_size));
}

Napi::Value RegisterFile::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = LiveFd(env, "pread");
  Site site{env, "pread", path_};
  uint64_t offset = IntegerArg(site, info[0], "offset", kMaxSafeInteger);
  unsigned width = WidthArg(site, info[1]);

  uint8_t bytes[4];
  ssize_t n = RetryEintr([&] { return ::pread(fd, bytes, width, static_cast<off_t>(offset)); });
  if (n < 0) {
    int err = errno;
    XPCI_LOG("pread fd=%d %s off=0x%" PRIx64 " width=%u -> %s", fd, path_.c_str(), offset, width, ErrnoName(err));
    ThrowErrno(env, err, "pread", path_);
  }
  if (static_cast<size_t>(n) < width) {
    XPCI_LOG("pread fd=%d %s off=0x%" PRIx64 " width=%u -> short (%zd bytes)", fd, path_.c_str(), offset, width, n);
    ThrowShort(env, "pread", path_, "bytesRead", static_cast<size_t>(n), width, offset);
  }
  uint32_t value = 0;
  for (unsigned i = 0; i < width; i++) value |= uint32_t{bytes[i]} << (8 * i);
  XPCI_LOG("pread fd=%d %s off=0x%" PRIx64 " width=%u -> 0x%" PRIx32, fd, path_.c_str(), offset, width, value);
  return Napi::Number::New(env, value);
}

Napi::Value RegisterFile::ReadBlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = LiveFd(env, "pread");
  Site site{env, "pread", path_};
  uint64_t offset = IntegerArg(site, info[0], "offset", kMaxSafeInteger);
  size_t length = static_cast<size_t>(IntegerArg(site, info[1], "length", kMaxBlock));

  std::unique_ptr<uint8_t[]> bytes(new uint8_t[length ? length : 1]);
  ssize_t n = RetryEintr([&] { return ::pread(fd, bytes.get(), length, static_cast<off_t>(offset)); });
  if (n < 0) {
    int err = errno;
    XPCI_LOG("pread fd=%d %s off=0x%" PRIx64 " length=%zu -> %s", fd, path_.c_str(), offset, length, ErrnoName(err));
    ThrowErrno(env, err, "pread", path_);
  }
  XPCI_LOG("pread fd=%d %s off=0x%" PRIx64 " length=%zu -> %zd bytes", fd, path_.c_str(), offset, length, n);
  return Napi::Buffer<uint8_t>::Copy(env, bytes.get(), static_cast<size_t>(n));
}

void RegisterFile::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = LiveFd(env, "pwrite");
  Site site{env, "pwrite", path_};
  uint64_t offset = IntegerArg(site, info[0], "offset", kMaxSafeInteger);
  unsigned width = WidthArg(site, info[1]);
  uint32_t value = ValueArg(site, info[2], width);
  // The kernel would say EBADF too; checking first gives the reason and keeps the log honest.
  if (!writable_) ThrowCheck(env, EBADF, "pwrite", path_, "register file is opened read-only");

  uint8_t bytes[4];
  for (unsigned i = 0; i < width; i++) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  ssize_t n = RetryEintr([&] { return ::pwrite(fd, bytes, width, static_cast<off_t>(offset)); });
  if (n < 0) {
    int err = errno;
    XPCI_LOG("pwrite fd=%d %s off=0x%" PRIx64 " width=%u value=0x%" PRIx32 " -> %s", fd, path_.c_str(), offset,
             width, value, ErrnoName(err));
    ThrowErrno(env, err, "pwrite", path_);
  }
  XPCI_LOG("pwrite fd=%d %s off=0x%" PRIx64 " width=%u value=0x%" PRIx32 " -> %zd bytes", fd, path_.c_str(), offset,
           width, value, n);
  if (static_cast<size_t>(n) < width) {
    ThrowShort(env, "pwrite", path_, "bytesWritten", static_cast<size_t>(n), width, offset);
  }
}

void RegisterFile::Close(const Napi::CallbackInfo& info) {
  if (fd_ < 0) return;
  int fd = fd_;
  fd_ = -1;  // Linux frees the fd even when close reports an error: never close it twice
  int rc = ::close(fd);
  int err = errno;
  XPCI_LOG("close fd=%d %s -> %s", fd, path_.c_str(), rc == 0 ? "ok" : ErrnoName(err));
  if (rc != 0 && err != EINTR) ThrowErrno(info.Env(), err, "close", path_);
}

}  // namespace xpci
