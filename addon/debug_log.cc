#include "debug_log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>

namespace xpci {

void DebugLog(const char* format, ...) {
  char line[1024];
  int prefix = std::snprintf(line, sizeof line, "[xpci-native] ");
  va_list args;
  va_start(args, format);
  int body = std::vsnprintf(line + prefix, sizeof line - prefix - 1, format, args);
  va_end(args);
  if (body < 0) return;
  size_t length = static_cast<size_t>(prefix) + static_cast<size_t>(body);
  if (length > sizeof line - 2) length = sizeof line - 2;  // truncated line: still newline-terminated
  line[length++] = '\n';
  // One write(2) keeps lines from different threads whole; a failed log write is ignored.
  ssize_t ignored = ::write(STDERR_FILENO, line, length);
  (void)ignored;
}

}  // namespace xpci
