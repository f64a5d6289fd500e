// Compile-time native debug logging: one stderr line per native operation.
// Enabled by XPCI_DEBUG (env XPCI_DEBUG=1 or --xpci_debug=1 at build time, or a --debug build).
#pragma once

namespace xpci {

#ifdef XPCI_DEBUG
inline constexpr bool kDebugLogging = true;
#else
inline constexpr bool kDebugLogging = false;
#endif

// Writes "[xpci-native] <formatted>\n" to stderr in a single write.
void DebugLog(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace xpci

// When logging is off the call is dead code: no cost, yet the arguments stay type-checked and
// count as used, so Release builds get no unused-variable warnings.
#define XPCI_LOG(...)                                          \
  do {                                                         \
    if (::xpci::kDebugLogging) ::xpci::DebugLog(__VA_ARGS__);  \
  } while (0)
