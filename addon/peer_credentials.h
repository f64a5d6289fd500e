#pragma once

#include <napi.h>

namespace xpci {

// peerCredentials(fd): {pid, uid, gid} of the process at the other end of a connected Unix socket
// (SO_PEERCRED: as it was when the connection was made).
Napi::Value PeerCredentials(const Napi::CallbackInfo& info);

}  // namespace xpci
