// Plain fd operations: exact-width pread/pwrite at a 64-bit offset (VFIO regions that cannot be
// mapped: config, I/O BARs), and close.
#pragma once

#include <napi.h>

namespace xpci {

Napi::Value FdReadRegister(const Napi::CallbackInfo& info);  // (fd, offset, width 1|2|4|8) -> bigint
void FdWriteRegister(const Napi::CallbackInfo& info);        // (fd, offset, width 1|2|4|8, value: bigint)
void CloseFd(const Napi::CallbackInfo& info);                // (fd)

}  // namespace xpci
