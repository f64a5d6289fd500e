#include "bus_error_guard.h"

#include <signal.h>

#include <mutex>

namespace xpci {

thread_local BusErrorGuard* armedBusErrorGuard __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

struct sigaction previousAction;

void OnBusError(int signal, siginfo_t* info, void* context) {
  BusErrorGuard* guard = armedBusErrorGuard;
  uintptr_t address = reinterpret_cast<uintptr_t>(info->si_addr);
  // si_code > 0: raised by the kernel for a fault (a kill(2) has none and si_addr means nothing).
  bool fault = info->si_code > 0;
  if (fault && guard != nullptr && address >= guard->begin && address < guard->end) siglongjmp(guard->resume, 1);
  // Not a guarded access: behave as if this handler had never been installed.
  if ((previousAction.sa_flags & SA_SIGINFO) != 0) {
    previousAction.sa_sigaction(signal, info, context);
  } else if (previousAction.sa_handler != SIG_DFL && previousAction.sa_handler != SIG_IGN) {
    previousAction.sa_handler(signal);
  } else {
    // Default or ignored: put the old disposition back and deliver the signal again under it. A
    // fault would also recur on return, but a SIGBUS sent with kill(2) would not.
    ::sigaction(SIGBUS, &previousAction, nullptr);
    ::raise(signal);
  }
}

}  // namespace

void InstallBusErrorHandler() {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction action = {};
    action.sa_sigaction = OnBusError;
    action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGBUS, &action, &previousAction);
  });
}

}  // namespace xpci
