// MemoryMapping: a memory BAR (`resourceN`) mapped MAP_SHARED. Every access is one volatile load or
// store of exactly the asked width, because MMIO registers react to the access width.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace xpci {

class MemoryMapping : public Napi::ObjectWrap<MemoryMapping> {
 public:
  static Napi::Function Class(Napi::Env env);
  // mapResource(path, writable, length?): maps the file and returns a new instance of `cls`.
  static Napi::Value Map(const Napi::CallbackInfo& info, Napi::FunctionReference& cls);
  // mapFd(fd, offset, length, writable, label): maps `length` bytes of an open fd at `offset` (a VFIO
  // region of a device fd); `label` stands in for the path in messages.
  static Napi::Value MapFd(const Napi::CallbackInfo& info, Napi::FunctionReference& cls);

  // Instances are only made by Map; one constructed from JS stays unmapped.
  explicit MemoryMapping(const Napi::CallbackInfo& info);
  ~MemoryMapping() override;  // GC finalizer: unmaps a forgotten mapping

 private:
  Napi::Value Path(const Napi::CallbackInfo& info);
  Napi::Value Length(const Napi::CallbackInfo& info);
  Napi::Value Writable(const Napi::CallbackInfo& info);
  Napi::Value Mapped(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Read64(const Napi::CallbackInfo& info);
  void Write(const Napi::CallbackInfo& info);
  void Write64(const Napi::CallbackInfo& info);
  void Unmap(const Napi::CallbackInfo& info);

  // A new instance of `cls` owning [base, base + length); unmaps it if the instance cannot be made.
  static Napi::Object Adopt(Napi::FunctionReference& cls, const std::string& path, bool writable, void* base,
                            size_t length);

  // Checks run before any access: mapped (and writable for a store), then offset in bounds and aligned.
  void CheckUsable(Napi::Env env, const char* op, bool store) const;
  size_t CheckOffset(Napi::Env env, const char* op, const Napi::Value& offsetArg, unsigned width) const;

  // Runs one load or store; a SIGBUS it raises (the device or file behind the mapping is gone) is
  // thrown as ENXIO instead of killing the process.
  template <typename Access>
  void Guard(Napi::Env env, const char* op, Access&& access) const;

  std::string path_;
  bool writable_ = false;
  uint8_t* base_ = nullptr;
  size_t length_ = 0;
};

}  // namespace xpci
