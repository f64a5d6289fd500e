#include "fd_args.h"

#include <cerrno>
#include <climits>

#include "errors.h"

namespace xpci {

int FdArg(const Site& site, const Napi::Value& value, const char* name) {
  return static_cast<int>(IntegerArg(site, value, name, INT_MAX));
}

uint64_t U64Arg(const Site& site, const Napi::Value& value, const char* name) {
  if (value.IsNumber()) return IntegerArg(site, value, name, kMaxSafeInteger);
  if (!value.IsBigInt()) {
    ThrowCheck(site.env, EINVAL, site.op, site.path, std::string(name) + " must be a bigint or a number");
  }
  bool lossless = false;
  uint64_t result = value.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) ThrowCheck(site.env, ERANGE, site.op, site.path, std::string(name) + " must be in [0, 2^64)");
  return result;
}

}  // namespace xpci
