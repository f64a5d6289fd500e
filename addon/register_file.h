// RegisterFile: a sysfs attribute (config space, I/O BAR resourceN) read and written with one
// pread/pwrite of exactly the asked width, little-endian.
#pragma once

#include <napi.h>

#include <string>

namespace xpci {

class RegisterFile : public Napi::ObjectWrap<RegisterFile> {
 public:
  static Napi::Function Class(Napi::Env env);
  // openRegisterFile(path, writable): opens the file and returns a new instance of `cls`.
  static Napi::Value Open(const Napi::CallbackInfo& info, Napi::FunctionReference& cls);

  // Instances are only made by Open; one constructed from JS stays closed.
  explicit RegisterFile(const Napi::CallbackInfo& info);
  ~RegisterFile() override;  // GC finalizer: closes a forgotten fd

 private:
  Napi::Value Path(const Napi::CallbackInfo& info);
  Napi::Value Writable(const Napi::CallbackInfo& info);
  Napi::Value Closed(const Napi::CallbackInfo& info);
  Napi::Value Size(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value ReadBlock(const Napi::CallbackInfo& info);
  void Write(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);

  // The open fd, or an EBADF error when closed.
  int LiveFd(Napi::Env env, const char* op) const;

  std::string path_;
  bool writable_ = false;
  int fd_ = -1;
};

}  // namespace xpci
