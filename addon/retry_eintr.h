#pragma once

#include <cerrno>

namespace xpci {

// Runs `call` (a syscall returning < 0 on error) again while it fails with EINTR; other failures
// and short transfers are returned as they are.
template <typename Call>
auto RetryEintr(Call call) {
  decltype(call()) result;
  do result = call();
  while (result < 0 && errno == EINTR);
  return result;
}

}  // namespace xpci
