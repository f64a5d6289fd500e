#include "errors.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "debug_log.h"

namespace xpci {
namespace {

Napi::Error MakeError(Napi::Env env, const char* code, int err, const char* syscall, const std::string& path,
                      const std::string& text) {
  std::string message = syscall;
  if (!path.empty()) message += " " + path;
  message += ": " + text;
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) error.Set("path", Napi::String::New(env, path));
  return error;
}

}  // namespace

const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);  // glibc >= 2.32
  return name ? name : "UNKNOWN";
}

void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& path, const std::string& note) {
  const char* description = strerrordesc_np(err);  // thread-safe, unlike strerror
  std::string text = description ? description : "Unknown error " + std::to_string(err);
  if (!note.empty()) text += " (" + note + ")";
  throw MakeError(env, ErrnoName(err), err, syscall, path, text);
}

void ThrowCheck(Napi::Env env, int err, const char* syscall, const std::string& path, const std::string& text) {
  XPCI_LOG("rejected %s%s%s: %s", syscall, path.empty() ? "" : " ", path.c_str(), text.c_str());
  throw MakeError(env, ErrnoName(err), err, syscall, path, text);
}

void ThrowShort(Napi::Env env, const char* syscall, const std::string& path, const char* countProperty,
                size_t done, size_t wanted, uint64_t offset) {
  char text[128];
  std::snprintf(text, sizeof text, "short transfer (%zu of %zu bytes at offset 0x%" PRIx64 ")", done, wanted,
                offset);
  Napi::Error error = MakeError(env, "ESHORT", 0, syscall, path, text);
  error.Set(countProperty, Napi::Number::New(env, static_cast<double>(done)));
  throw error;
}

}  // namespace xpci
