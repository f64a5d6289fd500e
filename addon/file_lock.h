#pragma once

#include <napi.h>

namespace xpci {

// lockExclusive(fd): flock(fd, LOCK_EX | LOCK_NB). Throws EWOULDBLOCK when another open file
// description holds the lock. The lock lasts until every fd of that description is closed.
Napi::Value LockExclusive(const Napi::CallbackInfo& info);

}  // namespace xpci
