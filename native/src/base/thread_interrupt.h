// Interrupting a thread blocked in a system call on a file a peer controls.
//
// A client can make some calls on the files it hands emu block for as long as it likes: a write to an
// interrupt eventfd whose O_NONBLOCK it cleared (the flag belongs to the open file both processes
// share) and whose counter it filled. Such calls run only on a thread of that client's own (irq_writer.h),
// and that thread is stopped with a signal whose handler does nothing and is installed without
// SA_RESTART, so the blocked call returns EINTR. The signal is one of the real-time ones, picked at
// load among those nobody has a handler for.
//
// Plain C++ (no Node-API): it links into native tests as it is.
#pragma once

#include <pthread.h>

namespace emu {
namespace thread_interrupt {

// Installs the handler (once per process; later calls do nothing). False when no signal was free.
bool Install();
// Sends the signal to `thread` (a running or finished, not yet joined thread). False before Install.
bool Interrupt(pthread_t thread);
// Unblocks the signal in the calling thread (threads inherit their creator's mask).
void AllowHere();

}  // namespace thread_interrupt
}  // namespace emu
