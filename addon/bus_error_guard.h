// BusErrorGuard: one access to a mapping whose backing can vanish (a device removed from the PCI
// bus, a resource file truncated) faults with SIGBUS, whose default action kills the process before
// any release runs. GuardedAccess turns such a fault into a `false` return instead, for that access
// only: the handler acts on a SIGBUS raised by the calling thread inside the guarded range while
// the guard is armed, and hands every other SIGBUS to the disposition that was there before.
//
// The jump back lands in GuardedAccess's own frame and skips nothing but the load or store itself
// (no destructors, no N-API or V8 calls in between), so the thread, the JS engine included, resumes
// in a consistent state. What a failed access means is for the caller to decide.
#pragma once

#include <atomic>
#include <csetjmp>
#include <cstddef>
#include <cstdint>

namespace xpci {

struct BusErrorGuard {
  sigjmp_buf resume;
  uintptr_t begin;
  uintptr_t end;
};

// The guard armed on this thread, or null. initial-exec: the handler must not be the first to touch
// this thread's copy (a lazy TLS allocation is not async-signal-safe).
extern thread_local BusErrorGuard* armedBusErrorGuard __attribute__((tls_model("initial-exec")));

// Installs the process-wide SIGBUS handler once (thread-safe; later calls are free).
void InstallBusErrorHandler();

// Runs `access` (a single load or store into [base, base + length)); false if it raised SIGBUS.
template <typename Access>
bool GuardedAccess(uint8_t* base, size_t length, Access&& access) {
  InstallBusErrorHandler();
  BusErrorGuard guard;
  guard.begin = reinterpret_cast<uintptr_t>(base);
  guard.end = guard.begin + length;
  // savemask 0: the handler runs with SA_NODEFER, so SIGBUS is not blocked when it jumps back, and
  // the common path makes no sigprocmask call.
  if (sigsetjmp(guard.resume, 0) != 0) {
    armedBusErrorGuard = nullptr;
    return false;
  }
  armedBusErrorGuard = &guard;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  access();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  armedBusErrorGuard = nullptr;
  return true;
}

}  // namespace xpci
