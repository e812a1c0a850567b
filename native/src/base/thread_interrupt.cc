// Interrupting a blocked thread (thread_interrupt.h).
#include "base/thread_interrupt.h"

#include <signal.h>

#include <atomic>
#include <mutex>

namespace emu {
namespace thread_interrupt {
namespace {

std::atomic<int> installed{0};

void Nothing(int) {}

}  // namespace

bool Install() {
  static std::once_flag once;
  std::call_once(once, [] {
    // From the top of the real-time range down: glibc and threading libraries use the bottom ones.
    for (int sig = SIGRTMAX - 2; sig > SIGRTMIN + 2; sig--) {
      struct sigaction old {};
      if (sigaction(sig, nullptr, &old) != 0) continue;
      if (old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO)) continue;
      struct sigaction sa {};
      sa.sa_handler = Nothing;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = 0;  // no SA_RESTART: the blocked call returns EINTR
      if (sigaction(sig, &sa, nullptr) == 0) {
        installed.store(sig, std::memory_order_release);
        return;
      }
    }
  });
  return installed.load(std::memory_order_acquire) != 0;
}

bool Interrupt(pthread_t thread) {
  const int sig = installed.load(std::memory_order_acquire);
  return sig != 0 && pthread_kill(thread, sig) == 0;
}

void AllowHere() {
  const int sig = installed.load(std::memory_order_acquire);
  if (sig == 0) return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

}  // namespace thread_interrupt
}  // namespace emu
