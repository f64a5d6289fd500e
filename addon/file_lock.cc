#include "file_lock.h"

#include <sys/file.h>

#include <cerrno>
#include <climits>
#include <string>

#include "args.h"
#include "debug_log.h"
#include "errors.h"
#include "retry_eintr.h"

namespace xpci {

Napi::Value LockExclusive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string none;
  int fd = static_cast<int>(IntegerArg(Site{env, "flock", none}, info[0], "fd", INT_MAX));
  if (RetryEintr([&] { return ::flock(fd, LOCK_EX | LOCK_NB); }) != 0) {
    int err = errno;
    XPCI_LOG("flock fd=%d LOCK_EX|LOCK_NB -> %s", fd, ErrnoName(err));
    ThrowErrno(env, err, "flock", none, "exclusive lock on fd " + std::to_string(fd));
  }
  XPCI_LOG("flock fd=%d LOCK_EX|LOCK_NB -> locked", fd);
  return env.Undefined();
}

}  // namespace xpci
