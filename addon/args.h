// Argument checks shared by the native entry points. Each failed check throws a NativeError naming
// the operation and path: EINVAL for a wrong type, a non-integer or a value outside a fixed set;
// ERANGE for an integer outside its range.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace xpci {

// Where an argument is used; it names the error's syscall and path.
struct Site {
  Napi::Env env;
  const char* op;
  const std::string& path;
};

// Largest integer a JS number holds exactly (Number.MAX_SAFE_INTEGER).
inline constexpr uint64_t kMaxSafeInteger = (uint64_t{1} << 53) - 1;

std::string PathArg(const Site& site, const Napi::Value& value);  // a string without NUL bytes
bool BoolArg(const Site& site, const Napi::Value& value, const char* name);
// A non-negative integer <= max.
uint64_t IntegerArg(const Site& site, const Napi::Value& value, const char* name, uint64_t max);
// 1, 2 or 4.
unsigned WidthArg(const Site& site, const Napi::Value& value);
// An unsigned integer that fits in `width` bytes (1, 2 or 4).
uint32_t ValueArg(const Site& site, const Napi::Value& value, unsigned width);
// A bigint in [0, 2^64).
uint64_t BigValueArg(const Site& site, const Napi::Value& value);

}  // namespace xpci
