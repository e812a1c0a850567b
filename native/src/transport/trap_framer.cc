#include "transport/trap_framer.h"

#include <algorithm>
#include <cstring>

namespace emu {
namespace {

uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

}  // namespace

bool TrapFramer::Candidate(const uint8_t* header) {
  const uint16_t command = Le16(header + 2);
  const uint32_t size = Le32(header + 4);
  const uint32_t flags = Le32(header + 8);
  return (flags & wire::kTypeMask) == wire::kTypeCommand &&
         (command == wire::kRegionRead || command == wire::kRegionWrite) &&
         size >= wire::kHeaderSize + wire::kRegionAccessSize && size <= wire::kMaxTrapMessage;
}

void TrapFramer::Push(const uint8_t* data, size_t n, bool has_fds, Sink& sink) {
  size_t pos = 0;
  while (pos < n) {
    if (forward_left_ > 0) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(forward_left_, n - pos));
      sink.Forward(data + pos, take);
      forward_left_ -= take;
      pos += take;
      continue;
    }
    if (have_ < wire::kHeaderSize) {
      const size_t take = std::min(wire::kHeaderSize - have_, n - pos);
      std::memcpy(head_ + have_, data + pos, take);
      have_ += take;
      pos += take;
      if (have_ < wire::kHeaderSize) break;
    }
    const uint32_t size = Le32(head_ + 4);
    const uint64_t length = size < wire::kHeaderSize ? wire::kHeaderSize : size;
    const bool candidate = !tainted_ && Candidate(head_);
    if (!candidate) {
      // Everything from here to the message's end goes to JavaScript as it comes.
      sink.Forward(head_ + flushed_, have_ - flushed_);
      forward_left_ = length - have_;
      Reset();
      continue;
    }
    if (have_ < size) {
      const size_t take = std::min<size_t>(size - have_, n - pos);
      std::memcpy(head_ + have_, data + pos, take);
      have_ += take;
      pos += take;
      if (have_ < size) break;
    }
    // Complete. Ending the chunk, it owns the chunk's fds (if any): JavaScript's then.
    const bool owns_fds = has_fds && pos == n;
    if (owns_fds || !sink.Serve(head_, size)) sink.Forward(head_, size);
    Reset();
  }
  if (has_fds) {
    // The fds belong to the message holding the chunk's last byte: if that one is still incomplete
    // here, it goes to JavaScript, from its first byte on.
    if (have_ > flushed_) {
      sink.Forward(head_ + flushed_, have_ - flushed_);
      flushed_ = have_;
      tainted_ = true;
    }
    sink.EndChunk();
  }
}

}  // namespace emu
