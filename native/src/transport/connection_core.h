// One vfio-user connection whose socket native code reads, frames and writes (TrapChannel's core,
// trap_channel.cc): its framer, the register traps it answers, its output queue, and what JavaScript
// has taken and acknowledged. Read by the socket thread (socket_thread.h) and the JS thread, under one
// mutex (lock_order::kConnection); see trap_channel.cc for the whole mechanism.
#pragma once

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "base/contain.h"
#include "base/fault_injection.h"
#include "base/uv_lock.h"
#include "os/client_files.h"
#include "os/fd_passing.h"
#include "transport/message_framer.h"
#include "transport/register_block.h"
#include "transport/socket_thread.h"
#include "transport/vfio_user_wire.h"

namespace emu {
namespace connection {

constexpr size_t kReadSize = 64 * 1024;
constexpr int kReadsPerWake = 16;
// Accesses the socket thread answers for one channel before it looks at the others.
constexpr int kTrapsPerWake = 256;
// Bytes passed on and not yet taken by JavaScript above which the thread stops reading.
constexpr size_t kMaxPassedOn = 8 << 20;
constexpr uint32_t kMaxAreas = 64;

// Our own fds (dups queued for sending).
inline void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds) close(fd);
}

// fds the client sent that nobody took: let go of without waiting on them (client_files.h).
inline void ReleaseAll(const std::vector<int>& fds, uint64_t owner) {
  for (int fd : fds) client_files::Release(fd, owner);
}

struct Area {
  uint32_t region = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  bool readable = false;
  bool writable = false;
  void* map = nullptr;
  size_t map_size = 0;
  uint8_t* base = nullptr;
  // Or registers a native object serves (its accesses have effects): no memory then.
  std::shared_ptr<RegisterBlock> registers;
};

struct Out {
  std::vector<uint8_t> data;
  size_t offset = 0;
  std::vector<int> fds;  // our dups, sent with the first byte
};

class ConnectionCore final : public MessageFramer::Sink, public SocketThread::Channel {
 public:
  ConnectionCore(int fd, size_t max_queued, size_t max_message, size_t max_fds)
      : fd_(fd), max_queued_(max_queued), framer_(max_message, max_fds) {
    uv_mutex_init(&mutex_);
  }
  ~ConnectionCore() override {
    uv_mutex_destroy(&mutex_);
  }

  int fd() const override { return fd_; }
  // The stall detector's name for the connection (watchdog.h); set once, before the thread sees it.
  uint64_t label() const override { return label_; }
  void SetLabel(uint64_t label) { label_ = label; }

  // Socket thread: the fd is readable, writable, or hung up.
  void OnEvents(uint32_t events) override {
    UvLock lock(&mutex_, lock_order::kConnection);
    if (closed_ || failed()) return;
    Containing([&] {
      if (events & EPOLLOUT) FlushLocked();
      if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) TakeTrapsLocked();
    });
    UpdateWatchLocked();
  }

  // JS thread: reads what the socket holds now, as the socket thread would, so that what the peer
  // sent (its hang-up too) is known before the caller decides anything on it.
  // Returns whether reading goes on (false while paused, bounded, or at the end).
  bool Settle() {
    UvLock lock(&mutex_, lock_order::kConnection);
    if (!closed_ && !failed()) {
      Containing([&] { ReadLocked(0, false); });  // the caller takes what was passed on right after: no wake-up
      UpdateWatchLocked();
    }
    return !closed_ && ReadingLocked();
  }

  bool Reading() {
    UvLock lock(&mutex_, lock_order::kConnection);
    return !closed_ && ReadingLocked();
  }

  // JS thread.
  void SetWake(uv_async_t* wake) { wake_ = wake; }
  void SetId(uint64_t id) { id_ = id; }

  int Write(const uint8_t* data, size_t n, const std::vector<int>& fds) {
    UvLock lock(&mutex_, lock_order::kConnection);
    if (closed_ || errno_ != 0) return -(errno_ != 0 ? errno_ : EBADF);
    Containing([&] { SendLocked(data, n, fds); });
    UpdateWatchLocked();
    return errno_ != 0 ? -errno_ : 0;
  }

  struct Taken {
    std::deque<MessageFramer::Frame> frames;
    uint64_t seq = 0;
    bool end = false;
    int err = 0;
    bool drained = false;
  };

  Taken Take() {
    Taken t;
    UvLock lock(&mutex_, lock_order::kConnection);
    if (!frames_.empty()) {
      t.frames.swap(frames_);
      passed_on_bytes_ = 0;
      delivered_++;
    }
    t.seq = delivered_;
    t.end = eof_ && !eof_reported_;
    if (t.end) eof_reported_ = true;
    t.err = errno_ != 0 && !error_reported_ ? errno_ : 0;
    if (t.err != 0) error_reported_ = true;
    t.drained = drained_;
    drained_ = false;
    UpdateWatchLocked();  // reading may go on now that JavaScript took what was waiting
    return t;
  }

  void Ack(uint64_t seq) {
    UvLock lock(&mutex_, lock_order::kConnection);
    if (seq <= delivered_ && seq > acked_) acked_ = seq;
  }

  void SetPaused(bool paused) {
    UvLock lock(&mutex_, lock_order::kConnection);
    paused_ = paused;
    if (!closed_) UpdateWatchLocked();
  }

  void SetAreas(std::vector<Area> areas) {
    {
      UvLock lock(&mutex_, lock_order::kConnection);
      areas_.swap(areas);
    }
    UnmapAll(areas);  // the old ones, now that the thread cannot be inside them
  }

  size_t QueuedBytes() const { return queued_bytes_.load(std::memory_order_relaxed); }
  // fds the peer sent that JavaScript has not taken yet: for messages arriving, or framed and waiting.
  size_t HeldFds() {
    UvLock lock(&mutex_, lock_order::kConnection);
    size_t n = framer_.HeldFds();
    for (const auto& f : frames_) n += f.fds.size();
    return n;
  }
  uint64_t ServedReads() const { return served_reads_.load(std::memory_order_relaxed); }
  uint64_t ServedWrites() const { return served_writes_.load(std::memory_order_relaxed); }

  // JS thread: stops everything and closes the fd, and every fd still queued either way.
  void Close() {
    std::vector<Area> areas;
    std::deque<MessageFramer::Frame> frames;
    std::vector<int> held;
    std::deque<Out> out;
    {
      UvLock lock(&mutex_, lock_order::kConnection);
      if (closed_) return;
      closed_ = true;
      areas.swap(areas_);
      frames.swap(frames_);
      held = framer_.TakeHeldFds();
      out.swap(out_);
      queued_bytes_.store(0);
    }
    SocketThread::Get().Remove(id_);  // from here the thread never looks at this channel again
    close(fd_);
    for (auto& f : frames) ReleaseAll(f.fds, label_);
    ReleaseAll(held, label_);
    for (auto& o : out) CloseAll(o.fds);
    UnmapAll(areas);
  }

 private:
  bool failed() const { return errno_ != 0 || eof_; }

  // Work on the connection's state, mutex held: an exception (an allocation that failed) ends this
  // connection, as a socket error would, and no other (contain.h).
  template <typename F>
  void Containing(F&& f) {
    if (Contained("vfio-user connection", f)) return;
    if (errno_ == 0) errno_ = ENOMEM;
    NotifyLocked();
  }

  static void UnmapAll(std::vector<Area>& areas) {
    for (Area& a : areas) {
      if (a.map != nullptr) munmap(a.map, a.map_size);
    }
    areas.clear();
  }

  bool ReadingLocked() const {
    return !paused_ && !failed() && queued_bytes_.load(std::memory_order_relaxed) <= max_queued_ &&
           passed_on_bytes_ <= kMaxPassedOn;
  }

  bool JsIdleLocked() const { return frames_.empty() && acked_ == delivered_; }

  // The socket thread's read: only complete trapped accesses, each read alone, while nothing is with
  // JavaScript. Anything else is left in the socket for the JS thread's read (Settle), which its own
  // poll sees: the socket thread would only add a hop, since an access behind a message for
  // JavaScript waits for that message anyway. The socket thread's watch is edge-triggered, so what it
  // leaves does not wake it again; the next arrival does. Errors and the end of the stream go through
  // ReadLocked, as on the JS thread.
  void TakeTrapsLocked() {
    alignas(8) uint8_t peek[wire::kMaxTrapMessage];
    int i = 0;
    for (; i < kTrapsPerWake && ReadingLocked(); i++) {
      if (!framer_.AtBoundary() || !JsIdleLocked()) break;
      iovec iov{peek, sizeof(peek)};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      ssize_t n;
      do {
        n = recvmsg(fd_, &msg, MSG_PEEK | MSG_DONTWAIT);
      } while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {
        ReadLocked();  // the error, or the end
        return;
      }
      // MSG_CTRUNC without a control buffer: fds ride on these bytes, which makes them JavaScript's.
      uint32_t size = 0;
      if (n >= static_cast<ssize_t>(wire::kHeaderSize)) std::memcpy(&size, peek + 4, 4);
      if ((msg.msg_flags & MSG_CTRUNC) || n < static_cast<ssize_t>(wire::kHeaderSize) ||
          !MessageFramer::Candidate(peek) || static_cast<size_t>(n) < size) {
        break;
      }
      ReadLocked(size);
    }
    // Stopped for fairness with accesses left: watch again, which reports the socket readable anew
    // (no new arrival would, edge-triggered) after the other channels had their turn.
    if (i == kTrapsPerWake) watching_ = ~0u;
    if (!frames_.empty()) NotifyLocked();
  }

  void UpdateWatchLocked() {
    if (closed_) return;
    uint32_t want = 0;
    if (ReadingLocked()) want |= EPOLLIN;
    if (!out_.empty() && errno_ == 0) want |= EPOLLOUT;
    if (want == watching_) return;
    watching_ = want;
    SocketThread::Get().Watch(fd_, id_, want, &registered_);
  }

  void NotifyLocked() {
    if (wake_ != nullptr && !closed_) uv_async_send(wake_);
  }

  // Reads and frames what the socket holds (at most `limit` bytes per read, one read when given);
  // wakes JavaScript for what it passed on, unless told not to.
  void ReadLocked(size_t limit = 0, bool notify = true) {
    // Per thread: the socket thread reads, and the JS thread in Settle().
    thread_local std::vector<uint8_t> buffer(kReadSize);
    fault::Maybe(fault::kConnectionRead);
    bool passed = false;
    const int reads = limit == 0 ? kReadsPerWake : 1;
    for (int i = 0; i < reads && ReadingLocked(); i++) {
      Received r = ReceiveWithFds(fd_, buffer.data(), limit == 0 ? buffer.size() : limit);
      const ssize_t n = r.bytes;
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          errno_ = errno;
          passed = true;
        }
        break;
      }
      std::vector<int> fds = std::move(r.fds);
      if (r.truncated) {
        // Fds were lost: the stream can no longer be trusted (as UnixSocket's EMSGCTRUNC).
        ReleaseAll(fds, label_);
        errno_ = EMSGSIZE;
        truncated_ = true;
        passed = true;
        break;
      }
      if (n == 0 && fds.empty()) {
        eof_ = true;
        passed = true;
        break;
      }
      framer_.Push(buffer.data(), static_cast<size_t>(n), std::move(fds), *this);
      passed = true;
    }
    if (notify && passed && (!frames_.empty() || failed())) NotifyLocked();
  }

  // MessageFramer::Sink (mutex held).
  void Deliver(MessageFramer::Frame&& frame) override {
    passed_on_bytes_ += frame.bytes.size();
    frames_.push_back(std::move(frame));
  }

  void Release(int fd) override { client_files::Release(fd, label_); }

  bool Serve(const uint8_t* m, size_t size) override {
    // Nothing earlier may still be with JavaScript: not taken, or not handled.
    if (areas_.empty() || !frames_.empty() || acked_ != delivered_) return false;
    uint16_t command;
    uint32_t flags, region, count;
    uint64_t offset;
    std::memcpy(&command, m + 2, 2);
    std::memcpy(&flags, m + 8, 4);
    std::memcpy(&offset, m + wire::kHeaderSize, 8);
    std::memcpy(&region, m + wire::kHeaderSize + 8, 4);
    std::memcpy(&count, m + wire::kHeaderSize + 12, 4);
    if (count != 1 && count != 2 && count != 4 && count != 8) return false;
    if (offset % count != 0) return false;
    const size_t base = wire::kHeaderSize + wire::kRegionAccessSize;
    const bool read = command == wire::kRegionRead;
    if (size != (read ? base : base + count)) return false;
    const Area* area = nullptr;
    for (const Area& a : areas_) {
      // count <= size first: an area smaller than the access would make size - count wrap around.
      if (a.region == region && offset >= a.offset && count <= a.size && offset - a.offset <= a.size - count) {
        area = &a;
        break;
      }
    }
    if (area == nullptr || (read ? !area->readable : !area->writable)) return false;
    uint8_t reply[wire::kMaxTrapMessage];
    const uint32_t reply_size = static_cast<uint32_t>(read ? base + count : base);
    std::memcpy(reply, m, 4);  // msg_id, command
    std::memcpy(reply + 4, &reply_size, 4);
    const uint32_t reply_flags = wire::kTypeReply;
    std::memcpy(reply + 8, &reply_flags, 4);
    std::memset(reply + 12, 0, 4);
    std::memcpy(reply + wire::kHeaderSize, m + wire::kHeaderSize, wire::kRegionAccessSize);
    if (area->registers) {
      uint64_t value = 0;
      if (!read) std::memcpy(&value, m + base, count);  // little-endian, as the wire is
      if (!(read ? area->registers->Read(offset - area->offset, count, &value)
                 : area->registers->Write(offset - area->offset, count, value))) {
        return false;
      }
      if (read) std::memcpy(reply + base, &value, count);
    } else if (read) {
      Load(area->base + (offset - area->offset), reply + base, count);
    } else {
      Store(area->base + (offset - area->offset), m + base, count);
    }
    (read ? served_reads_ : served_writes_).fetch_add(1, std::memory_order_relaxed);
    if (!(flags & wire::kNoReply)) SendLocked(reply, reply_size, {});
    return true;
  }

  // The client may touch the same words through its own mapping: single-copy atomic accesses.
  static void Load(const uint8_t* p, uint8_t* out, uint32_t count) {
    switch (count) {
      case 1: { uint8_t v = __atomic_load_n(p, __ATOMIC_ACQUIRE); std::memcpy(out, &v, 1); break; }
      case 2: { uint16_t v = __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_ACQUIRE); std::memcpy(out, &v, 2); break; }
      case 4: { uint32_t v = __atomic_load_n(reinterpret_cast<const uint32_t*>(p), __ATOMIC_ACQUIRE); std::memcpy(out, &v, 4); break; }
      default: { uint64_t v = __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_ACQUIRE); std::memcpy(out, &v, 8); break; }
    }
  }
  static void Store(uint8_t* p, const uint8_t* in, uint32_t count) {
    switch (count) {
      case 1: { uint8_t v; std::memcpy(&v, in, 1); __atomic_store_n(p, v, __ATOMIC_RELEASE); break; }
      case 2: { uint16_t v; std::memcpy(&v, in, 2); __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, __ATOMIC_RELEASE); break; }
      case 4: { uint32_t v; std::memcpy(&v, in, 4); __atomic_store_n(reinterpret_cast<uint32_t*>(p), v, __ATOMIC_RELEASE); break; }
      default: { uint64_t v; std::memcpy(&v, in, 8); __atomic_store_n(reinterpret_cast<uint64_t*>(p), v, __ATOMIC_RELEASE); break; }
    }
  }

  // Sends now what the socket takes, queues the rest (fds dup'ed if none went out yet).
  void SendLocked(const uint8_t* data, size_t n, const std::vector<int>& fds) {
    size_t sent = 0;
    if (out_.empty()) {
      ssize_t r = SendOne(data, n, fds);
      if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          errno_ = errno;
          NotifyLocked();
          return;
        }
        r = 0;
      }
      sent = static_cast<size_t>(r);
      if (sent == n) return;
    }
    Out o;
    o.data.assign(data + sent, data + n);
    if (sent == 0) {
      for (int fd : fds) {
        const int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dup >= 0) o.fds.push_back(dup);
      }
    }
    queued_bytes_.fetch_add(o.data.size(), std::memory_order_relaxed);
    out_.push_back(std::move(o));
  }

  ssize_t SendOne(const uint8_t* data, size_t n, const std::vector<int>& fds) {
    return SendWithFds(fd_, data, n, fds.data(), fds.size());
  }

  void FlushLocked() {
    bool had = !out_.empty();
    while (!out_.empty()) {
      Out& head = out_.front();
      ssize_t r = SendOne(head.data.data() + head.offset, head.data.size() - head.offset, head.fds);
      if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        errno_ = errno;
        NotifyLocked();
        return;
      }
      CloseAll(head.fds);  // the kernel holds its own references once the first byte is out
      head.fds.clear();
      head.offset += static_cast<size_t>(r);
      queued_bytes_.fetch_sub(static_cast<size_t>(r), std::memory_order_relaxed);
      if (head.offset == head.data.size()) out_.pop_front();
    }
    if (had) {
      drained_ = true;
      NotifyLocked();
    }
  }

 public:
  bool truncated() const { return truncated_; }

 private:
  const int fd_;
  const size_t max_queued_;
  uint64_t id_ = 0;
  uint64_t label_ = 0;
  uv_mutex_t mutex_;
  uv_async_t* wake_ = nullptr;
  bool closed_ = false;
  bool paused_ = false;
  bool eof_ = false;
  bool eof_reported_ = false;
  int errno_ = 0;
  bool error_reported_ = false;
  bool truncated_ = false;
  bool drained_ = false;
  uint32_t watching_ = 0;
  bool registered_ = false;
  MessageFramer framer_;
  std::deque<MessageFramer::Frame> frames_;
  size_t passed_on_bytes_ = 0;
  uint64_t delivered_ = 0;
  uint64_t acked_ = 0;
  std::deque<Out> out_;
  std::atomic<size_t> queued_bytes_{0};
  std::vector<Area> areas_;
  std::atomic<uint64_t> served_reads_{0};
  std::atomic<uint64_t> served_writes_{0};
};

}  // namespace connection
}  // namespace emu
