#include "memory/staged_space.h"

#include <algorithm>
#include <cstring>

namespace emu {

void StagedSpace::Begin(const DmaSpace* under) {
  under_ = under;
  need_ = {};
  writes_.clear();
  for (const auto& w : windows_) {
    if (!w->fetched) bytes_ -= w->data.size();
  }
  windows_.erase(std::remove_if(windows_.begin(), windows_.end(), [](const auto& w) { return !w->fetched; }),
                 windows_.end());
}

StagedSpace::Window* StagedSpace::Make(uint64_t iova, uint64_t length, bool fetched, bool failed) const {
  auto w = std::make_unique<Window>(Window{iova, length, std::vector<uint8_t>(failed ? 0 : length), fetched, failed});
  bytes_ += w->data.size();
  windows_.push_back(std::move(w));
  return windows_.back().get();
}

Hit StagedSpace::Find(uint64_t iova, uint64_t length, Access access, uint8_t** out) const {
  const Hit hit = under_ == nullptr ? Hit::kMiss : under_->Find(iova, length, access, out);
  if (hit != Hit::kIndirect) return hit;
  for (auto it = windows_.rbegin(); it != windows_.rend(); ++it) {
    Window& w = **it;
    if (!w.Holds(iova, length)) continue;
    if (w.failed) return Hit::kMiss;
    if (!w.fetched && access != Access::kWrite) continue;  // never fetched: nothing to read
    *out = w.data.data() + (iova - w.iova);
    return Hit::kOk;
  }
  if (access == Access::kWrite && length <= kMaxWindow) {
    *out = Make(iova, length, false, false)->data.data();
    return Hit::kOk;
  }
  need_ = {iova, length};
  return Hit::kIndirect;
}

bool StagedSpace::Add(uint64_t iova, const uint8_t* bytes, uint64_t length) {
  if (length == 0 || length > kMaxWindow || iova + length < iova) return false;
  if (bytes_ + length > kMaxBytes || windows_.size() >= kMaxWindows) {
    windows_.clear();
    bytes_ = 0;
  }
  Window* w = Make(iova, length, true, bytes == nullptr);
  if (bytes != nullptr) std::memcpy(w->data.data(), bytes, length);
  return true;
}

void StagedSpace::Log(const uint8_t* at, size_t length) const {
  const Window* home = nullptr;
  const uintptr_t p = reinterpret_cast<uintptr_t>(at);
  uint64_t offset = 0;
  for (const auto& w : windows_) {
    const uintptr_t data = reinterpret_cast<uintptr_t>(w->data.data());
    if (!w->failed && p >= data && length <= w->size && p - data <= w->size - length) {
      home = w.get();
      offset = p - data;
      break;
    }
  }
  if (home == nullptr) return;  // a store into direct memory: it is there already
  const uint64_t iova = home->iova + offset;
  writes_.push_back({iova, std::vector<uint8_t>(at, at + length)});
  // Other windows over the same bytes are a cache of them too: they see the store.
  for (const auto& w : windows_) {
    if (w.get() == home || w->failed) continue;
    const uint64_t from = std::max(iova, w->iova);
    const uint64_t to = std::min(iova + length, w->iova + w->size);
    if (from < to) std::memcpy(w->data.data() + (from - w->iova), at + (from - iova), to - from);
  }
}

}  // namespace emu
