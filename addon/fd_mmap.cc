#include "fd_mmap.h"

#include <sys/mman.h>

#include <cerrno>
#include <cinttypes>

#include "debug_log.h"
#include "errors.h"

namespace xpci {

void* MapSharedWindow(Napi::Env env, int fd, uint64_t offset, uint64_t length, bool writable, const std::string& label) {
  if (length == 0) ThrowCheck(env, EINVAL, "mmap", label, "length must be > 0");
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* base = ::mmap(nullptr, length, prot, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (base == MAP_FAILED) {
    int err = errno;
    XPCI_LOG("mmap %s fd=%d off=0x%" PRIx64 " length=0x%" PRIx64 " -> %s", label.c_str(), fd, offset, length, ErrnoName(err));
    ThrowErrno(env, err, "mmap", label);
  }
  XPCI_LOG("mmap %s fd=%d off=0x%" PRIx64 " length=0x%" PRIx64 " %s -> %p", label.c_str(), fd, offset, length,
           writable ? "rw" : "ro", base);
  return base;
}

}  // namespace xpci
