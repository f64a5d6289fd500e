#include "memory_mapping.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>

#include "args.h"
#include "bus_error_guard.h"
#include "debug_log.h"
#include "errors.h"
#include "fd_args.h"
#include "fd_mmap.h"
#include "retry_eintr.h"

namespace xpci {
namespace {

// PCI registers are little-endian.
template <typename T>
T LittleEndian(T value) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  if constexpr (sizeof(T) == 2) return __builtin_bswap16(value);
  if constexpr (sizeof(T) == 4) return __builtin_bswap32(value);
  if constexpr (sizeof(T) == 8) return __builtin_bswap64(value);
#endif
  return value;
}

// Exactly one access of sizeof(T) bytes: volatile forbids splitting, merging or eliding it.
template <typename T>
T Load(uint8_t* address) {
  return LittleEndian(*reinterpret_cast<volatile T*>(address));
}

template <typename T>
void Store(uint8_t* address, T value) {
  *reinterpret_cast<volatile T*>(address) = LittleEndian(value);
}

}  // namespace

Napi::Function MemoryMapping::Class(Napi::Env env) {
  return DefineClass(env, "MemoryMapping",
                     {
                         InstanceAccessor<&MemoryMapping::Path>("path"),
                         InstanceAccessor<&MemoryMapping::Length>("length"),
                         InstanceAccessor<&MemoryMapping::Writable>("writable"),
                         InstanceAccessor<&MemoryMapping::Mapped>("mapped"),
                         InstanceMethod<&MemoryMapping::Read>("read"),
                         InstanceMethod<&MemoryMapping::Read64>("read64"),
                         InstanceMethod<&MemoryMapping::Write>("write"),
                         InstanceMethod<&MemoryMapping::Write64>("write64"),
                         InstanceMethod<&MemoryMapping::Unmap>("unmap"),
                     });
}

Napi::Value MemoryMapping::Map(const Napi::CallbackInfo& info, Napi::FunctionReference& cls) {
  Napi::Env env = info.Env();
  const std::string none;
  std::string path = PathArg(Site{env, "mmap", none}, info[0]);
  Site site{env, "mmap", path};
  bool writable = BoolArg(site, info[1], "writable");
  // Parsed before open so that a bad argument cannot leak the fd.
  bool wholeFile = info[2].IsUndefined();
  uint64_t length = wholeFile ? 0 : IntegerArg(site, info[2], "length", kMaxSafeInteger);

  int fd = RetryEintr([&] { return ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC); });
  if (fd < 0) {
    int err = errno;
    XPCI_LOG("open %s %s -> %s", path.c_str(), writable ? "rw" : "ro", ErrnoName(err));
    ThrowErrno(env, err, "open", path);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    XPCI_LOG("fstat fd=%d %s -> %s", fd, path.c_str(), ErrnoName(err));
    ThrowErrno(env, err, "fstat", path);
  }
  uint64_t fileSize = static_cast<uint64_t>(st.st_size);
  if (wholeFile) length = fileSize;
  if (length == 0 || length > fileSize) {
    ::close(fd);
    ThrowCheck(env, EINVAL, "mmap", path,
               "length " + std::to_string(length) + " must be in [1, file size " + std::to_string(fileSize) + "]");
  }

  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* base = ::mmap(nullptr, length, prot, MAP_SHARED, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping keeps its own reference to the file
  if (base == MAP_FAILED) {
    XPCI_LOG("mmap %s length=0x%" PRIx64 " %s -> %s", path.c_str(), length, writable ? "rw" : "ro", ErrnoName(err));
    ThrowErrno(env, err, "mmap", path);
  }
  XPCI_LOG("mmap %s length=0x%" PRIx64 " %s -> %p", path.c_str(), length, writable ? "rw" : "ro", base);
  return Adopt(cls, path, writable, base, length);
}

Napi::Value MemoryMapping::MapFd(const Napi::CallbackInfo& info, Napi::FunctionReference& cls) {
  Napi::Env env = info.Env();
  const std::string none;
  Site site{env, "mmap", none};
  int fd = FdArg(site, info[0]);
  uint64_t offset = U64Arg(site, info[1], "offset");
  uint64_t length = IntegerArg(site, info[2], "length", kMaxSafeInteger);
  bool writable = BoolArg(site, info[3], "writable");
  std::string label = PathArg(site, info[4]);
  void* base = MapSharedWindow(env, fd, offset, length, writable, label);
  return Adopt(cls, label, writable, base, length);
}

Napi::Object MemoryMapping::Adopt(Napi::FunctionReference& cls, const std::string& path, bool writable, void* base,
                                  size_t length) {
  Napi::Object object;
  try {
    object = cls.New({});
  } catch (...) {
    ::munmap(base, length);
    throw;
  }
  MemoryMapping* mapping = Unwrap(object);
  mapping->path_ = path;
  mapping->writable_ = writable;
  mapping->base_ = static_cast<uint8_t*>(base);
  mapping->length_ = length;
  return object;
}

MemoryMapping::MemoryMapping(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MemoryMapping>(info) {}

MemoryMapping::~MemoryMapping() {
  if (base_ == nullptr) return;
  XPCI_LOG("munmap %s %p length=0x%zx (garbage collected)", path_.c_str(), static_cast<void*>(base_), length_);
  ::munmap(base_, length_);
}

void MemoryMapping::CheckUsable(Napi::Env env, const char* op, bool store) const {
  if (base_ == nullptr) ThrowCheck(env, EBADF, op, path_, "mapping is unmapped");
  // Refused here: a store through a PROT_READ mapping would be a SIGSEGV.
  if (store && !writable_) ThrowCheck(env, EBADF, op, path_, "mapping is read-only");
}

size_t MemoryMapping::CheckOffset(Napi::Env env, const char* op, const Napi::Value& offsetArg, unsigned width) const {
  uint64_t offset = IntegerArg(Site{env, op, path_}, offsetArg, "offset", kMaxSafeInteger);
  if (width > length_ || offset > length_ - width) {
    ThrowCheck(env, ERANGE, op, path_,
               "offset " + std::to_string(offset) + " + width " + std::to_string(width) + " exceeds mapping length " +
                   std::to_string(length_));
  }
  // base_ is page-aligned, so an aligned offset is an aligned address; unaligned MMIO can fault.
  if (offset % width != 0) {
    ThrowCheck(env, EINVAL, op, path_,
               "offset " + std::to_string(offset) + " is not aligned to width " + std::to_string(width));
  }
  return static_cast<size_t>(offset);
}

template <typename Access>
void MemoryMapping::Guard(Napi::Env env, const char* op, Access&& access) const {
  if (GuardedAccess(base_, length_, access)) return;
  XPCI_LOG("%s %s -> SIGBUS", op, path_.c_str());
  ThrowErrno(env, ENXIO, op, path_, "SIGBUS: the device or file behind the mapping is gone");
}

Napi::Value MemoryMapping::Path(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), path_); }

Napi::Value MemoryMapping::Length(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(length_));
}

Napi::Value MemoryMapping::Writable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), writable_);
}

Napi::Value MemoryMapping::Mapped(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), base_ != nullptr);
}

Napi::Value MemoryMapping::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "load", false);
  unsigned width = WidthArg(Site{env, "load", path_}, info[1]);
  size_t offset = CheckOffset(env, "load", info[0], width);
  uint8_t* address = base_ + offset;
  uint32_t value = 0;
  Guard(env, "load", [&] {
    value = width == 1 ? Load<uint8_t>(address) : width == 2 ? Load<uint16_t>(address) : Load<uint32_t>(address);
  });
  XPCI_LOG("load%u %s off=0x%zx -> 0x%" PRIx32, 8 * width, path_.c_str(), offset, value);
  return Napi::Number::New(env, value);
}

Napi::Value MemoryMapping::Read64(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "load", false);
  size_t offset = CheckOffset(env, "load", info[0], 8);
  uint64_t value = 0;
  Guard(env, "load", [&] { value = Load<uint64_t>(base_ + offset); });
  XPCI_LOG("load64 %s off=0x%zx -> 0x%" PRIx64, path_.c_str(), offset, value);
  return Napi::BigInt::New(env, value);
}

void MemoryMapping::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "store", true);
  unsigned width = WidthArg(Site{env, "store", path_}, info[1]);
  size_t offset = CheckOffset(env, "store", info[0], width);
  uint32_t value = ValueArg(Site{env, "store", path_}, info[2], width);
  uint8_t* address = base_ + offset;
  Guard(env, "store", [&] {
    if (width == 1) Store<uint8_t>(address, static_cast<uint8_t>(value));
    else if (width == 2) Store<uint16_t>(address, static_cast<uint16_t>(value));
    else Store<uint32_t>(address, value);
  });
  XPCI_LOG("store%u %s off=0x%zx value=0x%" PRIx32, 8 * width, path_.c_str(), offset, value);
}

void MemoryMapping::Write64(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckUsable(env, "store", true);
  size_t offset = CheckOffset(env, "store", info[0], 8);
  uint64_t value = BigValueArg(Site{env, "store", path_}, info[1]);
  Guard(env, "store", [&] { Store<uint64_t>(base_ + offset, value); });
  XPCI_LOG("store64 %s off=0x%zx value=0x%" PRIx64, path_.c_str(), offset, value);
}

void MemoryMapping::Unmap(const Napi::CallbackInfo& info) {
  if (base_ == nullptr) return;
  void* base = base_;
  base_ = nullptr;  // never touched again, whatever munmap says
  int rc = ::munmap(base, length_);
  int err = errno;
  XPCI_LOG("munmap %s %p length=0x%zx -> %s", path_.c_str(), base, length_, rc == 0 ? "ok" : ErrnoName(err));
  if (rc != 0) ThrowErrno(info.Env(), err, "munmap", path_);
}

}  // namespace xpci
