// libFuzzer target: the vfio-user message framer every connection of emu reads through
// (src/transport/message_framer.*), on streams a hostile peer sends. Built by scripts/fuzz.sh with
// -fsanitize=fuzzer,address,undefined, without Node-API.
//
// Input: two bytes of limits (largest message, most fds held), then the stream, cut into writes by
// its own bytes, some carrying fds (numbered; the framer owns them from the push). The same writes are
// framed twice: once as sent, once glued the way Linux's recvmsg may glue them (fd-less writes joined
// to the next write, which ends the read when it carries fds). Checked: both give the same frames
// (kinds, bytes, fds, excess); every fd is handed over or released exactly once, none twice, none
// lost; the fds held never pass the bound; a message's frame is its bytes, a refused one its header.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "../src/transport/message_framer.h"

#include "check.h"

namespace {

using emu::MessageFramer;


struct Seen {
  int kind;
  std::vector<uint8_t> bytes;
  std::vector<int> fds;
  uint32_t excess;
  bool operator==(const Seen& o) const {
    return kind == o.kind && bytes == o.bytes && fds == o.fds && excess == o.excess;
  }
};

class Recorder : public MessageFramer::Sink {
 public:
  explicit Recorder(size_t max_message) : max_message_(max_message) {}
  void Deliver(MessageFramer::Frame&& f) override {
    if (f.kind == MessageFramer::kMessage) {
      uint32_t size;
      std::memcpy(&size, f.bytes.data() + 4, 4);
      CHECK(f.bytes.size() == size && size >= emu::wire::kHeaderSize && size <= max_message_);
    } else {
      CHECK(f.bytes.size() == emu::wire::kHeaderSize && f.excess == 0);
    }
    for (int fd : f.fds) Own(fd);
    frames.push_back({f.kind, std::move(f.bytes), std::move(f.fds), f.excess});
  }
  bool Serve(const uint8_t*, size_t) override { return false; }
  void Release(int fd) override { Own(fd); }
  std::vector<Seen> frames;
  std::map<int, int> owned;  // fd -> times handed over or released

 private:
  void Own(int fd) { CHECK(++owned[fd] == 1); }
  size_t max_message_;
};

struct Write {
  const uint8_t* data;
  size_t n;
  std::vector<int> fds;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const size_t max_message = emu::wire::kMaxTrapMessage + data[0] * 4;
  const size_t max_fds = data[1] % 9;
  // Writes: a length byte (1-32), then that many bytes of stream; one in four carries 1-6 fds. (A
  // write of fds alone sends nothing on a stream socket: Linux's unix_stream_sendmsg sends no skb.)
  std::vector<Write> writes;
  int next_fd = 1000;
  size_t total_fds = 0;
  for (size_t at = 2; at < size;) {
    const uint8_t b = data[at++];
    const size_t n = std::min<size_t>(b % 33, size - at);
    Write w{data + at, n, {}};
    if (n == 0) continue;
    if ((b >> 6) == 0) {
      for (int k = 0; k < 1 + (b >> 5) % 6; k++) w.fds.push_back(next_fd++);
    }
    total_fds += w.fds.size();
    writes.push_back(std::move(w));
    at += n;
  }

  Recorder as_sent(max_message);
  MessageFramer a(max_message, max_fds);
  for (const Write& w : writes) {
    a.Push(w.data, w.n, w.fds, as_sent);
    CHECK(a.HeldFds() <= max_fds);
  }
  for (int fd : a.TakeHeldFds()) as_sent.Release(fd);
  CHECK(as_sent.owned.size() == total_fds);

  // Glued as the kernel may: fd-less writes joined with what follows, up to and including a write
  // with fds.
  Recorder as_read(max_message);
  MessageFramer b(max_message, max_fds);
  std::vector<uint8_t> run;
  for (const Write& w : writes) {
    run.insert(run.end(), w.data, w.data + w.n);
    if (w.fds.empty()) continue;
    b.Push(run.data(), run.size(), w.fds, as_read);
    CHECK(b.HeldFds() <= max_fds);
    run.clear();
  }
  if (!run.empty()) b.Push(run.data(), run.size(), {}, as_read);
  for (int fd : b.TakeHeldFds()) as_read.Release(fd);
  CHECK(as_read.owned.size() == total_fds);
  CHECK(as_sent.frames.size() == as_read.frames.size());
  for (size_t i = 0; i < as_sent.frames.size(); i++) CHECK(as_sent.frames[i] == as_read.frames[i]);
  return 0;
}
