// Argument checks for file descriptors and 64-bit offsets, beside args.h's.
#pragma once

#include <napi.h>

#include <cstdint>

#include "args.h"

namespace xpci {

// A file descriptor number: an integer in [0, INT_MAX].
int FdArg(const Site& site, const Napi::Value& value, const char* name = "fd");
// A 64-bit offset or size passed as a bigint or as a safe-integer number.
uint64_t U64Arg(const Site& site, const Napi::Value& value, const char* name);

}  // namespace xpci
