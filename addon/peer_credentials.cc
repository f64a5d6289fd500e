#include "peer_credentials.h"

#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <string>

#include "args.h"
#include "debug_log.h"
#include "errors.h"

namespace xpci {

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string none;
  int fd = static_cast<int>(IntegerArg(Site{env, "getsockopt", none}, info[0], "fd", INT_MAX));

  struct ucred credentials {};
  socklen_t size = sizeof credentials;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) {
    int err = errno;
    XPCI_LOG("getsockopt fd=%d SO_PEERCRED -> %s", fd, ErrnoName(err));
    ThrowErrno(env, err, "getsockopt", none, "SO_PEERCRED on fd " + std::to_string(fd));
  }
  XPCI_LOG("getsockopt fd=%d SO_PEERCRED -> pid=%d uid=%u gid=%u", fd, static_cast<int>(credentials.pid),
           static_cast<unsigned>(credentials.uid), static_cast<unsigned>(credentials.gid));

  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, credentials.pid));
  result.Set("uid", Napi::Number::New(env, credentials.uid));
  result.Set("gid", Napi::Number::New(env, credentials.gid));
  return result;
}

}  // namespace xpci
