// JS errors of the shape `NativeError` (src/native/binding.ts):
//   message "<syscall> <path>: <text>", code (errno name), errno, syscall, path.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace xpci {

// errno name such as "EACCES" ("UNKNOWN" if libc has none).
const char* ErrnoName(int err);

// A failed syscall: the text is strerror(err), optionally followed by " (note)".
// An empty path leaves the `path` property unset.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& path,
                             const std::string& note = "");

// A check done by the addon itself (bad argument, closed handle): code is errno name of `err`.
[[noreturn]] void ThrowCheck(Napi::Env env, int err, const char* syscall, const std::string& path,
                             const std::string& text);

// pread/pwrite moved fewer bytes than asked: code 'ESHORT', errno 0 (no kernel error), and a
// numeric `countProperty` ("bytesRead" or "bytesWritten") holding what was transferred.
[[noreturn]] void ThrowShort(Napi::Env env, const char* syscall, const std::string& path,
                             const char* countProperty, size_t done, size_t wanted, uint64_t offset);

}  // namespace xpci
