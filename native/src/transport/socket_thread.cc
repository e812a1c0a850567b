#include "transport/socket_thread.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>

#include "base/lock_order.h"
#include "base/uv_lock.h"
#include "base/watchdog.h"

namespace emu {

bool SocketThread::Add(const std::shared_ptr<Channel>& channel, uint64_t* id) {
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
  channels_[next] = channel;  // may throw: the id is not used then
  *id = next;
  next_id_++;
  return true;
}

void SocketThread::Watch(int fd, uint64_t id, uint32_t events, bool* registered) {
  // A channel watching nothing leaves the set: a hung-up fd would otherwise be reported forever.
  // Edge-triggered: see ConnectionCore::TakeTrapsLocked.
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
      std::shared_ptr<Channel> channel;
      {
        UvLock lock(&mutex_, lock_order::kLeaf);
        auto it = channels_.find(events[i].data.u64);
        if (it != channels_.end()) channel = it->second;
      }
      if (!channel) continue;
      watchdog::Busy busy(&beat, "a vfio-user connection's accesses", channel->label());
      channel->OnEvents(events[i].events);  // contains what its connection throws
    }
  }
}

}  // namespace emu
