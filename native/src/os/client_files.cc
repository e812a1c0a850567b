// The files a client hands emu (client_files.h), and the binding: fileKind(fd) -> { kind, filesystem },
// releaseFd(fd, owner?) -> whether the closer took it, closerStats() -> { pending, closed }.
#include "os/client_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <sys/prctl.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "base/args.h"
#include "base/contain.h"
#include "base/errors.h"
#include "base/lock_order.h"
#include "base/watchdog.h"
#include "module.h"

namespace emu {
namespace client_files {
namespace {

// Filesystems on a local disk: a call on their files waits for the disk at most, never for a process.
constexpr const char* kLocalDisk[] = {"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "bcachefs", "jfs"};

// The filesystem type of mount `id`, from /proc/self/mountinfo ("ID PARENT MAJ:MIN ROOT POINT OPTS
// [TAGS...] - TYPE SOURCE SUPER"); empty when not listed (an internal mount).
std::string MountType(long id) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    long mount = -1;
    if (std::sscanf(line.c_str(), "%ld", &mount) != 1 || mount != id) continue;
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) return "";
    std::istringstream rest(line.substr(dash + 3));
    std::string type;
    rest >> type;
    return type;
  }
  return "";
}

// The mount of fd's file, from /proc/self/fdinfo ("mnt_id:\tN"); -1 if unknown.
long MountOf(int fd) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    long id;
    if (std::sscanf(line.c_str(), "mnt_id: %ld", &id) == 1) return id;
  }
  return -1;
}

}  // namespace

Kind KindOf(int fd, std::string* filesystem) {
  filesystem->clear();
  if (fcntl(fd, F_GETFD) < 0) return kClosed;
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  char target[256];
  const ssize_t n = readlink(path, target, sizeof(target) - 1);
  if (n < 0) return kOther;  // no /proc: nothing can be told, so nothing is trusted
  target[n] = '\0';
  if (std::strcmp(target, "anon_inode:[eventfd]") == 0) return kEventFd;
  // Only shmem and hugetlbfs files answer F_GET_SEALS; for any other the kernel says EINVAL itself.
  if (fcntl(fd, F_GET_SEALS) >= 0) return kMemory;
  if (target[0] != '/') return kOther;  // a socket, a pipe, another anonymous inode
  *filesystem = MountType(MountOf(fd));
  for (const char* local : kLocalDisk) {
    if (*filesystem == local) return kDiskFile;
  }
  return kOther;
}

namespace {

// The closer: one thread for the process, started at the first file that needs it and kept (it may be
// inside a close that never returns: such a thread cannot be stopped, and is never joined).
class Closer {
 public:
  static Closer& Get() {
    static Closer* c = new Closer();  // never destroyed: its thread may outlive everything
    return *c;
  }

  void Post(int fd, uint64_t owner) {
    {
      lock_order::Guard<std::mutex> lock(mutex_, lock_order::kLeaf);
      queue_.emplace_back(fd, owner);  // may throw: the caller's N-API edge reports it, fd still its own
      pending_++;
      by_owner_[owner]++;
      if (!started_) {
        std::thread([this] { Loop(); }).detach();
        started_ = true;
      }
    }
    cond_.notify_one();
  }

  CloserStats Stats() {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kLeaf);
    return {pending_, closed_};
  }

  uint64_t PendingFor(uint64_t owner) {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kLeaf);
    auto it = by_owner_.find(owner);
    return it == by_owner_.end() ? 0 : it->second;
  }

 private:
  void Loop() {
    prctl(PR_SET_NAME, "emu-closer", 0, 0, 0);
    watchdog::Beat beat("emu-closer");
    lock_order::UniqueGuard<std::mutex> lock(mutex_, lock_order::kLeaf);
    for (;;) {
      if (queue_.empty()) {
        cond_.wait(lock.held());
        continue;
      }
      const auto [fd, owner] = queue_.front();
      queue_.pop_front();
      lock.unlock();
      {
        watchdog::Busy busy(&beat, "closing a file a client handed over (its server may be slow to answer)", owner);
        close(fd);
      }
      lock.lock();
      pending_--;
      closed_++;
      if (--by_owner_[owner] == 0) by_owner_.erase(owner);
    }
  }

  std::mutex mutex_;
  std::condition_variable cond_;
  std::deque<std::pair<int, uint64_t>> queue_;
  uint64_t pending_ = 0;
  uint64_t closed_ = 0;
  std::map<uint64_t, uint64_t> by_owner_;
  bool started_ = false;
};

}  // namespace

bool Release(int fd, uint64_t owner) {
  std::string filesystem;
  switch (KindOf(fd, &filesystem)) {
    case kClosed:
      return false;
    case kEventFd:
    case kMemory:
    case kDiskFile:
      close(fd);
      return false;
    case kOther:
      break;
  }
  Closer::Get().Post(fd, owner);
  return true;
}

CloserStats Stats() { return Closer::Get().Stats(); }

uint64_t PendingFor(uint64_t owner) { return Closer::Get().PendingFor(owner); }

namespace {

Napi::Value ReleaseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  const uint64_t owner = info[1].IsNumber() ? static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value()) : 0;
  return Napi::Boolean::New(env, Release(fd, owner));
}

// closerStats(owner?) -> { pending, closed } (pending: of that owner's, when given)
Napi::Value CloserStatsJs(const Napi::CallbackInfo& info) {
  const CloserStats s = Stats();
  Napi::Object o = Napi::Object::New(info.Env());
  const double pending = info[0].IsNumber()
                             ? static_cast<double>(PendingFor(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value())))
                             : static_cast<double>(s.pending);
  o.Set("pending", pending);
  o.Set("closed", static_cast<double>(s.closed));
  return o;
}

Napi::Value FileKind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  std::string filesystem;
  const Kind kind = KindOf(fd, &filesystem);
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", static_cast<double>(kind));
  o.Set("filesystem", filesystem);
  return o;
}

}  // namespace
}  // namespace client_files

void InitClientFiles(Napi::Env env, Napi::Object exports) {
  exports.Set("fileKind", Napi::Function::New(env, client_files::FileKind, "fileKind"));
  exports.Set("releaseFd", Napi::Function::New(env, client_files::ReleaseFd, "releaseFd"));
  exports.Set("closerStats", Napi::Function::New(env, client_files::CloserStatsJs, "closerStats"));
  Napi::Object kinds = Napi::Object::New(env);
  kinds.Set("eventfd", static_cast<double>(client_files::kEventFd));
  kinds.Set("memory", static_cast<double>(client_files::kMemory));
  kinds.Set("diskFile", static_cast<double>(client_files::kDiskFile));
  kinds.Set("other", static_cast<double>(client_files::kOther));
  kinds.Set("closed", static_cast<double>(client_files::kClosed));
  exports.Set("fileKinds", kinds);
}

}  // namespace emu
