#include "shared_memory.h"

#include <sys/mman.h>

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <string>

#include "args.h"
#include "debug_log.h"
#include "errors.h"
#include "fd_args.h"
#include "fd_mmap.h"

namespace xpci {
namespace {

const std::string kNoPath;

}  // namespace

Napi::Function SharedMemory::Class(Napi::Env env) {
  return DefineClass(env, "SharedMemory",
                     {
                         InstanceAccessor<&SharedMemory::Length>("length"),
                         InstanceAccessor<&SharedMemory::Mapped>("mapped"),
                         InstanceMethod<&SharedMemory::Read>("read"),
                         InstanceMethod<&SharedMemory::Write>("write"),
                         InstanceMethod<&SharedMemory::Unmap>("unmap"),
                     });
}

Napi::Value SharedMemory::Map(const Napi::CallbackInfo& info, Napi::FunctionReference& cls) {
  Napi::Env env = info.Env();
  Site site{env, "mmap", kNoPath};
  int fd = FdArg(site, info[0]);
  uint64_t offset = U64Arg(site, info[1], "offset");
  uint64_t length = IntegerArg(site, info[2], "length", kMaxSafeInteger);
  bool writable = BoolArg(site, info[3], "writable");
  void* base = MapSharedWindow(env, fd, offset, length, writable, kNoPath);
  Napi::Object object;
  try {
    object = cls.New({});
  } catch (...) {
    ::munmap(base, length);
    throw;
  }
  SharedMemory* memory = Unwrap(object);
  memory->writable_ = writable;
  memory->base_ = static_cast<uint8_t*>(base);
  memory->length_ = length;
  return object;
}

SharedMemory::SharedMemory(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SharedMemory>(info) {}

SharedMemory::~SharedMemory() {
  if (base_ != nullptr) ::munmap(base_, length_);
}

uint8_t* SharedMemory::Range(Napi::Env env, const char* op, uint64_t offset, uint64_t length) const {
  if (base_ == nullptr) ThrowCheck(env, EBADF, op, kNoPath, "shared memory is unmapped");
  if (offset > length_ || length > length_ - offset) {
    ThrowCheck(env, ERANGE, op, kNoPath,
               std::to_string(length) + " bytes at offset " + std::to_string(offset) + " exceed the mapping length " +
                   std::to_string(length_));
  }
  return base_ + offset;
}

Napi::Value SharedMemory::Length(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(length_));
}

Napi::Value SharedMemory::Mapped(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), base_ != nullptr);
}

Napi::Value SharedMemory::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "read", kNoPath};
  uint64_t offset = IntegerArg(site, info[0], "offset", kMaxSafeInteger);
  uint64_t length = IntegerArg(site, info[1], "length", kMaxSafeInteger);
  const uint8_t* from = Range(env, "read", offset, length);
  return Napi::Buffer<uint8_t>::Copy(env, from, length);
}

void SharedMemory::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "write", kNoPath};
  uint64_t offset = IntegerArg(site, info[0], "offset", kMaxSafeInteger);
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowCheck(env, EINVAL, "write", kNoPath, "data must be a Buffer or Uint8Array");
  }
  if (!writable_) ThrowCheck(env, EBADF, "write", kNoPath, "shared memory is mapped read-only");
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  uint8_t* to = Range(env, "write", offset, data.ByteLength());
  std::memcpy(to, data.Data(), data.ByteLength());
}

void SharedMemory::Unmap(const Napi::CallbackInfo& info) {
  if (base_ == nullptr) return;
  void* base = base_;
  base_ = nullptr;
  if (::munmap(base, length_) != 0) ThrowErrno(info.Env(), errno, "munmap", kNoPath);
}

}  // namespace xpci
