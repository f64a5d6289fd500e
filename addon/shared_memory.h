// SharedMemory: ordinary memory mapped MAP_SHARED from an fd (a memfd, or a memory fd another
// process handed over), read and written in bulk from JS. DMA memory: the device reaches it through
// the IOMMU, so it is never accessed with MMIO semantics.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace xpci {

class SharedMemory : public Napi::ObjectWrap<SharedMemory> {
 public:
  static Napi::Function Class(Napi::Env env);
  // mapSharedMemory(fd, offset, length, writable): maps and returns a new instance of `cls`.
  static Napi::Value Map(const Napi::CallbackInfo& info, Napi::FunctionReference& cls);

  explicit SharedMemory(const Napi::CallbackInfo& info);
  ~SharedMemory() override;  // GC finalizer: unmaps a forgotten mapping

  // [offset, offset + length) inside the live mapping, or a thrown NativeError for `op`.
  uint8_t* Range(Napi::Env env, const char* op, uint64_t offset, uint64_t length) const;

 private:
  Napi::Value Length(const Napi::CallbackInfo& info);
  Napi::Value Mapped(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);  // (offset, length) -> Buffer (a copy)
  void Write(const Napi::CallbackInfo& info);        // (offset, Buffer | Uint8Array)
  void Unmap(const Napi::CallbackInfo& info);

  bool writable_ = false;
  uint8_t* base_ = nullptr;
  size_t length_ = 0;
};

}  // namespace xpci
