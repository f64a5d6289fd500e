// mmap of a window of an open fd, MAP_SHARED (VFIO regions, DMA memory).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace xpci {

// Maps [offset, offset + length) of `fd`; a failure throws a NativeError for `label` (may be empty).
void* MapSharedWindow(Napi::Env env, int fd, uint64_t offset, uint64_t length, bool writable, const std::string& label);

}  // namespace xpci
