// The SIGBUS guard over guest memory. A client's memory fd can shrink while it is mapped (ftruncate of
// an unsealed memfd or file): touching a mapped page past the file's new end raises SIGBUS, which would
// kill the process and every device in it. Mappings registered here are covered instead: the handler
// replaces the faulting page with a private zero page (so the access, JavaScript or native, on any
// thread, completes and reads zeros), counts the fault, and returns. A mapping that faulted once is
// poisoned: emu stops using it (Mapping::Poisoned), as the client broke the memory it handed over. Faults anywhere else go to the
// handler that was installed before ours (by default: the process dies as it would have).
//
// The handler runs in signal context: it reads the registry with atomics only (a seqlock per slot)
// and calls nothing but mmap(2). Slots live in chunks that are never freed.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace emu {
namespace guard {

// Covers [start, start + length), whose pages are `page` bytes (the file's: 4 KiB, or a hugetlbfs
// page size). Returns a slot id, or -1 if the handler could not be installed.
int Register(void* start, size_t length, size_t page);
void Unregister(int slot);
// The count of faults caught in a slot since it was registered (slots live as long as the process;
// the count is the slot's while it stays registered). nullptr for slot -1.
const std::atomic<uint64_t>* FaultCounter(int slot);

}  // namespace guard
}  // namespace emu
