// TrapChannel: a vfio-user connection whose socket native code reads, frames and writes: the one
// framer of emu's connections (message_framer.h), and on a server, register accesses in memory-backed
// areas answered at socket speed, without the JS event loop.
//
//   new TrapChannel(fd, callback(), { maxQueuedBytes, maxMessageSize, maxMessageFds, label, owner })
//   write(data, fds) -> 0 | -errno; take() -> { frames: [{ kind, bytes, fds, excess }], seq, end, errno,
//   drained, reading }; ack(seq); pause(); resume(); setAreas([{ region, offset, size, readable,
//   writable, fd, fileOffset | registers }]); queuedBytes(); heldFds(); stats() -> { servedReads,
//   servedWrites }; settle() -> reading; close()
//
// One socket thread (epoll) serves every channel of the process. For each readable channel it reads,
// frames the stream and answers a REGION_READ / REGION_WRITE itself when all of this holds: it lies
// wholly inside one area given by setAreas (memory the device shares with the client through sparse
// mmap, mapped here by the channel itself; or a native RegisterBlock, whose registers have effects,
// such as iavf's interrupt re-arm), moves 1, 2, 4 or 8 naturally aligned bytes, carries no fds, and
// nothing earlier is still with JavaScript. "Still with JavaScript" is counted in deliveries: take()
// hands out every message framed so far under a sequence number, and JavaScript acks it once it has
// handled those messages; until then accesses are passed on in order, and JavaScript serves them from
// the same memory. So no reply ever overtakes an earlier message's. Without areas (a client's
// connection) every message goes to JavaScript.
//
// Two threads read, through the same framer under one mutex. The socket thread takes only complete
// trapped accesses, one by one (it peeks at each header first), and only while nothing is with
// JavaScript; it leaves every other byte in the socket. The JS thread watches the socket too (a
// uv_poll in lib/trap-channel.ts) and reads everything (settle()): a message for JavaScript thus costs
// no hop through another thread, and an access the JS thread happens to read is answered by the same
// native code. While the event loop is busy, the socket thread answers accesses alone.
//
// Writes from JavaScript and the thread's replies share one output queue, in order. Reading stops
// while JavaScript pauses, while the queue holds more than maxQueuedBytes (a peer that does not read
// its replies) and while more than kMaxPassedOn bytes of messages wait for JavaScript; a message
// arriving is held up to maxMessageSize, and fds up to maxMessageFds: every queue is bounded.
// Threads and mutexes are libuv's, as in doorbell_watcher.cc.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "base/args.h"
#include "base/contain.h"
#include "base/errors.h"
#include "base/fault_injection.h"
#include "base/js_callback.h"
#include "base/uv_lock.h"
#include "base/wake_up.h"
#include "base/watchdog.h"
#include "module.h"
#include "os/client_files.h"
#include "os/fd_passing.h"
#include "transport/register_block.h"
#include "transport/message_framer.h"
#include "transport/vfio_user_wire.h"

namespace emu {
namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr int kReadsPerWake = 16;
// Accesses the socket thread answers for one channel before it looks at the others.
constexpr int kTrapsPerWake = 256;
// Bytes passed on and not yet taken by JavaScript above which the thread stops reading.
constexpr size_t kMaxPassedOn = 8 << 20;
constexpr uint32_t kMaxAreas = 64;

// Our own fds (dups queued for sending).
void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds) close(fd);
}

// fds the client sent that nobody took: let go of without waiting on them (client_files.h).
void ReleaseAll(const std::vector<int>& fds, uint64_t owner) {
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

class Core;

// The process's socket thread: an epoll set of channels, started with the first and stopped with the last.
class SocketThread {
 public:
  static SocketThread& Get() {
    static SocketThread* instance = new SocketThread();  // never destroyed: channels may outlive statics
    return *instance;
  }

  // Registers a channel (EPOLLIN at once); false with errno on failure.
  bool Add(const std::shared_ptr<Core>& core, uint64_t* id);
  void Remove(uint64_t id);
  void Watch(int fd, uint64_t id, uint32_t events, bool* registered);

 private:
  SocketThread() { uv_mutex_init(&mutex_); }
  static void Run(void* arg) { static_cast<SocketThread*>(arg)->Loop(); }
  void Loop();

  uv_mutex_t mutex_;
  std::map<uint64_t, std::shared_ptr<Core>> channels_;
  uint64_t next_id_ = 1;
  int epoll_ = -1;
  int stop_fd_ = -1;
  bool running_ = false;
  uv_thread_t thread_{};
};

class Core final : public MessageFramer::Sink {
 public:
  Core(int fd, size_t max_queued, size_t max_message, size_t max_fds)
      : fd_(fd), max_queued_(max_queued), framer_(max_message, max_fds) {
    uv_mutex_init(&mutex_);
  }
  ~Core() override {
    uv_mutex_destroy(&mutex_);
  }

  int fd() const { return fd_; }
  // The stall detector's name for the connection (watchdog.h); set once, before the thread sees it.
  uint64_t label() const { return label_; }
  void SetLabel(uint64_t label) { label_ = label; }

  // Socket thread: the fd is readable, writable, or hung up.
  void OnEvents(uint32_t events) {
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

bool SocketThread::Add(const std::shared_ptr<Core>& core, uint64_t* id) {
  UvLock lock(&mutex_, lock_order::kLeaf);
  if (!running_) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    stop_fd_ = epoll_ >= 0 ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    int r = stop_fd_ >= 0 ? epoll_ctl(epoll_, EPOLL_CTL_ADD, stop_fd_, &ev) : -1;
    if (r == 0) r = uv_thread_create(&thread_, Run, this) == 0 ? 0 : -1;
    if (r != 0) {
      const int err = errno != 0 ? errno : EAGAIN;
      if (stop_fd_ >= 0) close(stop_fd_);
      if (epoll_ >= 0) close(epoll_);
      stop_fd_ = epoll_ = -1;
      errno = err;
      return false;
    }
    running_ = true;
  }
  const uint64_t next = next_id_;
  channels_[next] = core;  // may throw: the id is not used then
  *id = next;
  next_id_++;
  return true;
}

void SocketThread::Watch(int fd, uint64_t id, uint32_t events, bool* registered) {
  // A channel watching nothing leaves the set: a hung-up fd would otherwise be reported forever.
  // Edge-triggered: see Core::TakeTrapsLocked.
  epoll_event ev{};
  ev.events = events | EPOLLET;
  ev.data.u64 = id;
  if (events == 0) {
    if (*registered) epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    *registered = false;
  } else if (*registered) {
    epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &ev);
  } else if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) == 0) {
    *registered = true;
  }
}

void SocketThread::Remove(uint64_t id) {
  bool last;
  {
    UvLock lock(&mutex_, lock_order::kLeaf);
    auto it = channels_.find(id);
    if (it != channels_.end()) {
      epoll_ctl(epoll_, EPOLL_CTL_DEL, it->second->fd(), nullptr);
      channels_.erase(it);
    }
    last = channels_.empty() && running_;
    if (last) {
      // The last channel gone: the thread ends (a process serving nobody keeps no thread).
      uint64_t one = 1;
      (void)!write(stop_fd_, &one, sizeof(one));
      running_ = false;
    }
  }
  if (!last) return;
  uv_thread_join(&thread_);
  UvLock lock(&mutex_, lock_order::kLeaf);
  if (!running_) {
    close(stop_fd_);
    close(epoll_);
    stop_fd_ = epoll_ = -1;
  }
}

void SocketThread::Loop() {
  prctl(PR_SET_NAME, "emu-sockets", 0, 0, 0);
  watchdog::Beat beat("emu-sockets");
  epoll_event events[64];
  for (;;) {
    const int n = epoll_wait(epoll_, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; i++) {
      if (events[i].data.u64 == 0) return;  // stop_fd_
      std::shared_ptr<Core> core;
      {
        UvLock lock(&mutex_, lock_order::kLeaf);
        auto it = channels_.find(events[i].data.u64);
        if (it != channels_.end()) core = it->second;
      }
      if (!core) continue;
      watchdog::Busy busy(&beat, "a vfio-user connection's accesses", core->label());
      core->OnEvents(events[i].events);  // contains what its connection throws
    }
  }
}

class TrapChannel : public Napi::ObjectWrap<TrapChannel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TrapChannel",
                       {
                           InstanceMethod<&TrapChannel::WriteJs>("write"),
                           InstanceMethod<&TrapChannel::TakeJs>("take"),
                           InstanceMethod<&TrapChannel::AckJs>("ack"),
                           InstanceMethod<&TrapChannel::PauseJs>("pause"),
                           InstanceMethod<&TrapChannel::ResumeJs>("resume"),
                           InstanceMethod<&TrapChannel::SetAreasJs>("setAreas"),
                           InstanceMethod<&TrapChannel::QueuedBytesJs>("queuedBytes"),
                           InstanceMethod<&TrapChannel::HeldFdsJs>("heldFds"),
                           InstanceMethod<&TrapChannel::StatsJs>("stats"),
                           InstanceMethod<&TrapChannel::SettleJs>("settle"),
                           InstanceMethod<&TrapChannel::CloseJs>("close"),
                       });
  }

  explicit TrapChannel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrapChannel>(info) {
    Napi::Env env = info.Env();
    int fd;
    if (!ArgFd(info, 0, &fd)) return;
    if (!info[1].IsFunction()) {
      ThrowTypeError(env, "expected a callback");
      return;
    }
    if (!info[2].IsObject()) {
      ThrowTypeError(env, "expected options");
      return;
    }
    Napi::Object options = info[2].As<Napi::Object>();
    uint32_t max_queued = 4 << 20;
    uint32_t max_message, max_fds;
    if ((!options.Get("maxQueuedBytes").IsUndefined() &&
         !FieldU32(options, "maxQueuedBytes", UINT32_MAX, &max_queued)) ||
        !FieldU32(options, "maxMessageSize", UINT32_MAX, &max_message) || max_message < wire::kMaxTrapMessage ||
        !FieldU32(options, "maxMessageFds", kMaxFds, &max_fds)) {
      ThrowTypeError(env, "expected { maxQueuedBytes?, maxMessageSize (>= 40), maxMessageFds (<= 253) }");
      return;
    }
    wake_ = OpenWakeUp(env, OnAsync, this);
    if (wake_ == nullptr) return;
    // An open channel keeps the process alive, as a socket being read does.
    uv_ref(reinterpret_cast<uv_handle_t*>(wake_));
    callback_.Set(env, info[1].As<Napi::Function>(), "EmuTrapChannel", info.This().As<Napi::Object>());
    core_ = std::make_shared<Core>(fd, max_queued, max_message, max_fds);
    core_->SetWake(wake_);
    // Its name for the stall detector and the closer (client_files.h): the owner's (a device's,
    // for every connection it serves), or one of its own from its label.
    if (options.Get("owner").IsNumber()) {
      core_->SetLabel(static_cast<uint64_t>(options.Get("owner").As<Napi::Number>().Int64Value()));
    } else if (options.Get("label").IsString()) {
      core_->SetLabel(watchdog::Label(options.Get("label").As<Napi::String>().Utf8Value()));
      owns_label_ = true;
    }
    uint64_t id;
    if (!SocketThread::Get().Add(core_, &id)) {
      const int err = errno;
      core_.reset();
      Release();
      ThrowErrno(env, err, "uv_thread_create");
      return;
    }
    core_->SetId(id);
    core_->SetPaused(false);  // starts watching
    Ref();                    // alive while open: the callback reaches its owner
    open_ = true;
  }

  ~TrapChannel() override {
    if (core_) {
      core_->Close();
      if (owns_label_) watchdog::Unlabel(core_->label());
    }
    Release();
  }

 private:
  // A libuv callback: nothing may throw out of it (contain.h).
  static void OnAsync(uv_async_t* handle) {
    Contained("vfio-user connection callback", [&] { Notify(handle); });
  }

  static void Notify(uv_async_t* handle) {
    auto* self = static_cast<TrapChannel*>(handle->data);
    if (self == nullptr || self->callback_.Empty()) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::Object receiver = self->Value();
    self->callback_.Call(env, receiver, {});
  }

  bool owns_label_ = false;

  void Release() {
    if (wake_ != nullptr) {
      CloseWakeUp(wake_);
      wake_ = nullptr;
    }
  }

  bool Open(Napi::Env env, const char* what) {
    if (core_ && open_) return true;
    ThrowErrno(env, EBADF, what);
    return false;
  }

  Napi::Value WriteJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env, "write")) return env.Undefined();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      return ThrowTypeError(env, "expected a Uint8Array");
    }
    if (!info[1].IsArray()) return ThrowTypeError(env, "expected an array of fds");
    Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
    Napi::Array list = info[1].As<Napi::Array>();
    if (list.Length() > kMaxFds) return Napi::Number::New(env, -EINVAL);
    std::vector<int> fds(list.Length());
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Value v = list.Get(i);
      if (!v.IsNumber()) return ThrowTypeError(env, "expected an array of fds");
      fds[i] = v.As<Napi::Number>().Int32Value();
    }
    return Napi::Number::New(env, core_->Write(data.Data(), data.ByteLength(), fds));
  }

  Napi::Value TakeJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    Napi::Array frames = Napi::Array::New(env);
    if (core_ && open_) {
      Core::Taken t = core_->Take();
      uint32_t i = 0;
      for (MessageFramer::Frame& f : t.frames) {
        Napi::Object frame = Napi::Object::New(env);
        frame.Set("kind", kFrameKindNames[f.kind]);
        frame.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, f.bytes.data(), f.bytes.size()));
        Napi::Array fds = Napi::Array::New(env, f.fds.size());
        for (uint32_t k = 0; k < f.fds.size(); k++) fds.Set(k, Napi::Number::New(env, f.fds[k]));
        frame.Set("fds", fds);
        frame.Set("excess", Napi::Number::New(env, f.excess));
        frames.Set(i++, frame);
      }
      o.Set("seq", Napi::Number::New(env, static_cast<double>(t.seq)));
      o.Set("end", Napi::Boolean::New(env, t.end));
      o.Set("errno", Napi::Number::New(env, t.err));
      o.Set("truncated", Napi::Boolean::New(env, t.err != 0 && core_->truncated()));
      o.Set("drained", Napi::Boolean::New(env, t.drained));
      o.Set("reading", Napi::Boolean::New(env, core_->Reading()));
    }
    o.Set("frames", frames);
    return o;
  }

  Napi::Value AckJs(const Napi::CallbackInfo& info) {
    int64_t seq;
    if (!ArgInt(info, 0, 0, INT64_C(1) << 53, &seq)) return info.Env().Undefined();
    if (core_ && open_) core_->Ack(static_cast<uint64_t>(seq));
    return info.Env().Undefined();
  }

  Napi::Value PauseJs(const Napi::CallbackInfo& info) {
    if (core_ && open_) core_->SetPaused(true);
    return info.Env().Undefined();
  }

  Napi::Value ResumeJs(const Napi::CallbackInfo& info) {
    if (core_ && open_) core_->SetPaused(false);
    return info.Env().Undefined();
  }

  // setAreas(list): replaces the areas answered natively; each is mapped here from its fd.
  Napi::Value SetAreasJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env, "setAreas")) return env.Undefined();
    if (!info[0].IsArray()) return ThrowTypeError(env, "expected an array of areas");
    Napi::Array list = info[0].As<Napi::Array>();
    if (list.Length() > kMaxAreas) return ThrowTypeError(env, "too many areas");
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    std::vector<Area> areas;
    auto fail = [&](int err, const char* what) {
      for (Area& a : areas) {
        if (a.map != nullptr) munmap(a.map, a.map_size);
      }
      return err == 0 ? ThrowTypeError(env, what) : ThrowErrno(env, err, what);
    };
    for (uint32_t i = 0; i < list.Length(); i++) {
      if (!list.Get(i).IsObject()) return fail(0, "expected an array of areas");
      Napi::Object o = list.Get(i).As<Napi::Object>();
      Area a;
      uint32_t fd = 0, size = 0;
      uint64_t file_offset = 0;
      if (!FieldU32(o, "region", 8, &a.region) || !FieldBigUint64(o, "offset", &a.offset) ||
          !FieldU32(o, "size", 1u << 30, &size) || size == 0) {
        return fail(0, "an area needs region, offset (bigint) and size");
      }
      a.size = size;
      a.readable = o.Get("readable").ToBoolean();
      a.writable = o.Get("writable").ToBoolean();
      Napi::Value registers = o.Get("registers");
      if (!registers.IsUndefined()) {
        a.registers = RegisterBlockOf(registers);
        if (!a.registers) return fail(0, "registers must be a native register block");
        areas.push_back(std::move(a));
        continue;
      }
      if (!FieldU32(o, "fd", INT32_MAX, &fd) || !FieldBigUint64(o, "fileOffset", &file_offset)) {
        return fail(0, "a memory area needs fd and fileOffset (bigint)");
      }
      if (file_offset % page != 0) return fail(0, "fileOffset must be page-aligned");
      a.map_size = size;
      void* map = mmap(nullptr, a.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, static_cast<int>(fd),
                       static_cast<off_t>(file_offset));
      if (map == MAP_FAILED) return fail(errno, "mmap");
      a.map = map;
      a.base = static_cast<uint8_t*>(map);
      areas.push_back(a);
    }
    core_->SetAreas(std::move(areas));
    return env.Undefined();
  }

  Napi::Value QueuedBytesJs(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), core_ && open_ ? static_cast<double>(core_->QueuedBytes()) : 0);
  }

  Napi::Value HeldFdsJs(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), core_ && open_ ? static_cast<double>(core_->HeldFds()) : 0);
  }

  Napi::Value StatsJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("servedReads", Napi::Number::New(env, core_ ? static_cast<double>(core_->ServedReads()) : 0));
    o.Set("servedWrites", Napi::Number::New(env, core_ ? static_cast<double>(core_->ServedWrites()) : 0));
    return o;
  }

  Napi::Value SettleJs(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), core_ && open_ && core_->Settle());
  }

  Napi::Value CloseJs(const Napi::CallbackInfo& info) {
    if (open_) {
      open_ = false;
      core_->Close();
      Release();
      callback_.Drop();
      Unref();
    }
    return info.Env().Undefined();
  }

  std::shared_ptr<Core> core_;
  uv_async_t* wake_ = nullptr;
  JsCallback callback_;
  bool open_ = false;
};

}  // namespace

void InitTrapChannel(Napi::Env env, Napi::Object exports) {
  exports.Set("TrapChannel", TrapChannel::Define(env));
  Napi::Object w = Napi::Object::New(env);
  w.Set("headerSize", Napi::Number::New(env, wire::kHeaderSize));
  w.Set("maxTrapMessage", Napi::Number::New(env, wire::kMaxTrapMessage));
  w.Set("regionRead", Napi::Number::New(env, wire::kRegionRead));
  w.Set("regionWrite", Napi::Number::New(env, wire::kRegionWrite));
  w.Set("typeMask", Napi::Number::New(env, wire::kTypeMask));
  w.Set("typeCommand", Napi::Number::New(env, wire::kTypeCommand));
  w.Set("typeReply", Napi::Number::New(env, wire::kTypeReply));
  w.Set("noReply", Napi::Number::New(env, wire::kNoReply));
  w.Set("regionAccessSize", Napi::Number::New(env, wire::kRegionAccessSize));
  exports.Set("vfioUserWire", w);
}

}  // namespace emu
