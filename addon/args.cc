#include "args.h"

#include <cerrno>
#include <cmath>

#include "errors.h"

namespace xpci {
namespace {

// What the caller passed, for the message: the number itself, or its type.
std::string Describe(const Napi::Value& value) {
  switch (value.Type()) {
    case napi_number:
    case napi_bigint:
      return value.ToString().Utf8Value();
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "a boolean";
    case napi_string: return "a string";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    default: return "an object";
  }
}

[[noreturn]] void Reject(const Site& site, int err, const char* name, const char* expected, const Napi::Value& value) {
  ThrowCheck(site.env, err, site.op, site.path,
             std::string(name) + " must be " + expected + " (got " + Describe(value) + ")");
}

}  // namespace

std::string PathArg(const Site& site, const Napi::Value& value) {
  if (!value.IsString()) Reject(site, EINVAL, "path", "a string", value);
  std::string path = value.As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos) {
    ThrowCheck(site.env, EINVAL, site.op, "", "path must be a non-empty string without NUL bytes");
  }
  return path;
}

bool BoolArg(const Site& site, const Napi::Value& value, const char* name) {
  if (!value.IsBoolean()) Reject(site, EINVAL, name, "a boolean", value);
  return value.As<Napi::Boolean>().Value();
}

uint64_t IntegerArg(const Site& site, const Napi::Value& value, const char* name, uint64_t max) {
  if (!value.IsNumber()) Reject(site, EINVAL, name, "a number", value);
  double number = value.As<Napi::Number>().DoubleValue();
  if (std::isnan(number) || (std::isfinite(number) && std::trunc(number) != number)) {
    Reject(site, EINVAL, name, "an integer", value);
  }
  // Compare as doubles: every max used here (<= 2^53 - 1) is exact in a double.
  if (number < 0 || number > static_cast<double>(max)) {
    std::string expected = "in [0, " + std::to_string(max) + "]";
    Reject(site, ERANGE, name, expected.c_str(), value);
  }
  return static_cast<uint64_t>(number);
}

unsigned WidthArg(const Site& site, const Napi::Value& value) {
  if (value.IsNumber()) {
    double width = value.As<Napi::Number>().DoubleValue();
    if (width == 1 || width == 2 || width == 4) return static_cast<unsigned>(width);
  }
  Reject(site, EINVAL, "width", "1, 2 or 4", value);
}

uint32_t ValueArg(const Site& site, const Napi::Value& value, unsigned width) {
  uint64_t max = (uint64_t{1} << (8 * width)) - 1;
  return static_cast<uint32_t>(IntegerArg(site, value, "value", max));
}

uint64_t BigValueArg(const Site& site, const Napi::Value& value) {
  if (!value.IsBigInt()) Reject(site, EINVAL, "value", "a bigint", value);
  bool lossless = false;
  uint64_t result = value.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) Reject(site, ERANGE, "value", "a bigint in [0, 2^64)", value);
  return result;
}

}  // namespace xpci
