// The process's socket thread (emu-sockets): one epoll set for every vfio-user connection whose socket
// native code reads (TrapChannel), started with the first connection and stopped with the last, so a
// process serving nobody keeps no thread. It only dispatches readiness: what a connection does with it
// is the connection's (connection_core.h). Threads and mutexes are libuv's, as in doorbell_watcher.cc.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>

namespace emu {

class SocketThread {
 public:
  // What the thread serves: a connection's fd, its name for the stall detector, and its work when the
  // fd is ready (which contains whatever it throws, contain.h).
  class Channel {
   public:
    virtual ~Channel() = default;
    virtual int fd() const = 0;
    virtual uint64_t label() const = 0;
    virtual void OnEvents(uint32_t events) = 0;
  };

  static SocketThread& Get() {
    static SocketThread* instance = new SocketThread();  // never destroyed: channels may outlive statics
    return *instance;
  }

  // Registers a channel (EPOLLIN at once); false with errno on failure.
  bool Add(const std::shared_ptr<Channel>& channel, uint64_t* id);
  // From here the thread never looks at the channel again (joins the thread with the last one).
  void Remove(uint64_t id);
  // What the channel's fd is watched for (edge-triggered; 0: nothing, it leaves the set).
  void Watch(int fd, uint64_t id, uint32_t events, bool* registered);

 private:
  SocketThread() { uv_mutex_init(&mutex_); }
  static void Run(void* arg) { static_cast<SocketThread*>(arg)->Loop(); }
  void Loop();

  uv_mutex_t mutex_;
  std::map<uint64_t, std::shared_ptr<Channel>> channels_;
  uint64_t next_id_ = 1;
  int epoll_ = -1;
  int stop_fd_ = -1;
  bool running_ = false;
  uv_thread_t thread_{};
};

}  // namespace emu
