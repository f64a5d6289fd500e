// eventfd(2): the kernel's interrupt signal for VFIO (one per vector). Non-blocking, close-on-exec.
#pragma once

#include <napi.h>

namespace xpci {

Napi::Value EventfdCreate(const Napi::CallbackInfo& info);  // (initial = 0) -> fd
// (fd) -> the counter as a bigint (which resets it), or null when it is zero (EAGAIN)
Napi::Value EventfdRead(const Napi::CallbackInfo& info);
void EventfdWrite(const Napi::CallbackInfo& info);  // (fd, value: bigint) adds to the counter

}  // namespace xpci
