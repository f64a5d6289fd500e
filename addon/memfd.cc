#include "memfd.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <string>

#include "args.h"
#include "debug_log.h"
#include "errors.h"
#include "retry_eintr.h"

namespace xpci {

Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string none;
  std::string name = PathArg(Site{env, "memfd_create", none}, info[0]);
  uint64_t size = IntegerArg(Site{env, "ftruncate", name}, info[1], "size", kMaxSafeInteger);
  int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "memfd_create", name);
  if (RetryEintr([&] { return ::ftruncate(fd, static_cast<off_t>(size)); }) != 0) {
    int err = errno;
    ::close(fd);
    ThrowErrno(env, err, "ftruncate", name);
  }
  XPCI_LOG("memfd_create %s size=0x%" PRIx64 " -> fd=%d", name.c_str(), size, fd);
  return Napi::Number::New(env, fd);
}

}  // namespace xpci
