// The files a client hands emu, and which system calls on them cannot block.
//
// A client can hand over a file whose every operation waits on a server it runs itself: a file on a
// FUSE filesystem it mounted (fstat asks its daemon for the attributes, a page fault for the data, and
// close(2) for a flush that may never be answered), a socket whose SO_LINGER makes its last close wait.
// What such a call costs must fall on that client alone. So what a file is, is read from /proc and
// from fcntl(F_GET_SEALS), neither of which calls into its filesystem:
//   - an eventfd (SET_IRQS), written by its device's own thread (irq_writer.h), closed in place;
//   - memory: shmem or hugetlbfs (a memfd, a tmpfs or hugetlbfs file: what F_GET_SEALS answers for),
//     or a regular file on a local disk filesystem (ext4, xfs, btrfs, …): DMA_MAP maps these;
//   - anything else: never used, and closed by the client's device thread, where a close that waits
//     stops nobody else.
//
// Plain C++ but for the binding at the end of client_files.cc.
#pragma once

#include <cstdint>
#include <string>

namespace emu {
namespace client_files {

enum Kind : int {
  kEventFd = 0,
  kMemory = 1,  // shmem or hugetlbfs: no call on it waits for anyone
  kDiskFile = 2,  // a regular file on a local disk filesystem: calls wait for the disk at most
  kOther = 3,   // anything else (a file on FUSE, NFS, 9p…, a socket, a pipe, a device)
  kClosed = 4,  // not an open fd
};

// What fd is; `filesystem` gets the filesystem's type when it is a regular file's (else empty).
Kind KindOf(int fd, std::string* filesystem);

// Lets go of an fd a client handed over, without waiting on it: an eventfd, memory or a disk file is
// closed here; anything else by the process's closer thread (emu-closer), whose stalls the stall
// detector reports naming `owner` (a watchdog label id: the connection, 0 for none). Returns whether
// it went to the closer.
bool Release(int fd, uint64_t owner);
// fds waiting for the closer, and closed by it so far.
struct CloserStats {
  uint64_t pending = 0;
  uint64_t closed = 0;
};
CloserStats Stats();
// Of those waiting, the ones `owner` handed over.
uint64_t PendingFor(uint64_t owner);

}  // namespace client_files
}  // namespace emu
