#include "transport/message_framer.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace emu {
namespace {

uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

}  // namespace

bool MessageFramer::Candidate(const uint8_t* header) {
  const uint16_t command = Le16(header + 2);
  const uint32_t size = Le32(header + 4);
  const uint32_t flags = Le32(header + 8);
  return (flags & wire::kTypeMask) == wire::kTypeCommand &&
         (command == wire::kRegionRead || command == wire::kRegionWrite) &&
         size >= wire::kHeaderSize + wire::kRegionAccessSize && size <= wire::kMaxTrapMessage;
}

void MessageFramer::TakeFdsBefore(uint64_t end, std::vector<int>* fds, uint32_t* excess) {
  while (!pending_.empty() && pending_.front().at < end) {
    PendingFds& p = pending_.front();
    held_fds_ -= p.fds.size();
    fds->insert(fds->end(), p.fds.begin(), p.fds.end());
    *excess += p.excess;
    pending_.pop_front();
  }
}

std::vector<int> MessageFramer::TakeHeldFds() {
  std::vector<int> fds;
  for (PendingFds& p : pending_) fds.insert(fds.end(), p.fds.begin(), p.fds.end());
  pending_.clear();
  held_fds_ = 0;
  return fds;
}

void MessageFramer::Push(const uint8_t* data, size_t n, std::vector<int> fds, Sink& sink) {
  if (fds.empty()) {
    Split(data, n, sink);
    return;
  }
  // The fds belong to the chunk's last byte: they are held (and bounded) when the framer reaches it,
  // not before, so that how the kernel glued the writes together changes nothing.
  if (n > 0) Split(data, n - 1, sink);
  Hold(std::move(fds), n > 0, sink);
  if (n > 0) Split(data + n - 1, 1, sink);
}

void MessageFramer::Hold(std::vector<int> fds, bool next_byte, Sink& sink) {
  // They came with the next byte; with none (fds alone), with the last byte received.
  const uint64_t at = next_byte || pushed_ == 0 ? pushed_ : pushed_ - 1;
  const size_t room = max_fds_ > held_fds_ ? max_fds_ - held_fds_ : 0;
  const size_t keep = std::min(fds.size(), room);
  for (size_t i = keep; i < fds.size(); i++) sink.Release(fds[i]);
  const uint32_t excess = static_cast<uint32_t>(fds.size() - keep);
  fds.resize(keep);
  held_fds_ += keep;
  pending_.push_back({at, std::move(fds), excess});
}

void MessageFramer::Split(const uint8_t* data, size_t n, Sink& sink) {
  size_t pos = 0;
  while (pos < n) {
    if (skip_ > 0) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(skip_, n - pos));
      skip_ -= take;
      pos += take;
      if (skip_ == 0) {
        // The skipped message's last fds, which came after its header was passed on.
        std::vector<int> late;
        uint32_t excess = 0;
        TakeFdsBefore(pushed_ + pos, &late, &excess);
        for (int fd : late) sink.Release(fd);
        start_ = pushed_ + pos;
      }
      continue;
    }
    if (held_.size() < wire::kHeaderSize) {
      const size_t take = std::min(wire::kHeaderSize - held_.size(), n - pos);
      held_.insert(held_.end(), data + pos, data + pos + take);
      pos += take;
      if (held_.size() < wire::kHeaderSize) break;
    }
    const uint32_t size = Le32(held_.data() + 4);
    if (size < wire::kHeaderSize || size > max_message_) {
      Frame f;
      f.kind = size < wire::kHeaderSize ? kUndersized : kOversized;
      f.bytes.assign(held_.begin(), held_.begin() + wire::kHeaderSize);
      const uint64_t end = size < wire::kHeaderSize ? start_ + wire::kHeaderSize : start_ + size;
      uint32_t refused = 0;  // fds past the bound that came with it: released already, and it is refused anyway
      TakeFdsBefore(end, &f.fds, &refused);
      if (f.kind == kOversized) {
        // What arrived of its body beyond the header is skipped with the rest.
        const uint64_t have = pushed_ + pos - start_;
        skip_ = size - have;
        if (skip_ == 0) start_ = end;
      } else {
        start_ = end;
      }
      held_.clear();
      sink.Deliver(std::move(f));
      continue;
    }
    if (held_.size() < size) {
      const size_t take = std::min<size_t>(size - held_.size(), n - pos);
      if (held_.capacity() < size) held_.reserve(size);
      held_.insert(held_.end(), data + pos, data + pos + take);
      pos += take;
      if (held_.size() < size) break;
    }
    Frame f;
    const uint64_t end = start_ + size;
    TakeFdsBefore(end, &f.fds, &f.excess);
    start_ = end;
    if (f.fds.empty() && f.excess == 0 && Candidate(held_.data()) && sink.Serve(held_.data(), size)) {
      held_.clear();
      continue;
    }
    f.bytes.swap(held_);
    held_.clear();
    sink.Deliver(std::move(f));
  }
  pushed_ += n;
}

}  // namespace emu
