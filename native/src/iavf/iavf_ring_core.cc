#include "iavf/iavf_ring_core.h"
#include "base/fault_injection.h"

namespace emu {
namespace iavf {
namespace {

constexpr uint32_t kCmdIiptMask = 0x060;
constexpr uint32_t kCmdIiptIpv4Csum = 0x060;
constexpr uint32_t kCmdL4tMask = 0x300;
constexpr uint32_t kCtxCmdTso = 0x1;

constexpr uint64_t kRxEof = 1ull << 1;
constexpr uint64_t kRxL2tag1p = 1ull << 2;
constexpr uint64_t kRxFltstatRss = 3ull << 12;
constexpr uint64_t kRxErrRxe = 1ull << 19;
constexpr int kRxLengthShift = 38;

struct RsDesc {
  uint8_t* at;
  uint64_t qw1;
};

}  // namespace

void TxPacket::Gather(uint8_t* dest) const {
  size_t at = 0;
  for (uint32_t i = 0; i < nparts; i++) {
    std::memcpy(dest + at, parts[i].data, parts[i].length);
    at += parts[i].length;
  }
}

void FrameBuilder::FixChecksums(const TxPacket& p, uint8_t* frame) {
  Layers layers;
  if (!ParseLayers(frame, p.total, &layers)) return;
  if ((p.cmd & kCmdIiptMask) == kCmdIiptIpv4Csum) FixIpv4Checksum(frame, p.total, layers);
  if (p.cmd & kCmdL4tMask) FixL4Checksum(frame, p.total, layers);
}

TxPass TxWalk(const DmaSpace& mem, uint64_t ring, uint32_t len, uint32_t head, uint32_t tail, uint32_t max_frames,
              uint32_t max_bytes, TxSink& sink) {
  TxPass pass{head, kTxCaughtUp, {}};
  if (len == 0 || len > kMaxRingLen || head >= len || tail >= len) {
    pass.stop = kTxBadIndex;
    return pass;
  }
  DescRing descs(mem, ring, len, kTxDescSize);
  if (descs.Open() != Hit::kOk) {
    pass.stop = kTxRing;
    return pass;
  }
  TxPacket p;
  RsDesc rs[kMaxTsoBuffers + 1];
  uint32_t pos = head;
  while (pos != tail && pass.stop == kTxCaughtUp) {
    if (sink.frames >= max_frames || sink.bytes >= max_bytes) {
      pass.stop = kTxBudget;
      break;
    }
    const uint32_t start = pos;
    p.nparts = 0;
    p.total = 0;
    p.tso = false;
    p.mss = p.tso_len = p.cmd = p.offset = 0;
    p.l2tag1 = 0;
    uint32_t nrs = 0;
    uint32_t buffers = 0;
    uint32_t counts[kCountSize] = {};
    bool bad = false;
    bool ended = false;
    while (pos != tail) {
      Hit hit;
      uint8_t* d = descs.At(pos, tail, &hit);
      if (d == nullptr) {
        pass.stop = hit == Hit::kIndirect ? kTxIndirect : kTxRing;
        break;
      }
      const uint64_t qw0 = Load64(d);
      const uint64_t qw1 = Load64(d + 8);
      pos = pos + 1 == len ? 0 : pos + 1;
      const uint64_t dtype = qw1 & 0xf;
      if (dtype == kDtypeContext) {
        const uint32_t cmd = static_cast<uint32_t>((qw1 >> 4) & 0xffff);
        p.tso = (cmd & kCtxCmdTso) != 0;
        p.tso_len = static_cast<uint32_t>((qw1 >> 30) & 0x3ffff);
        p.mss = static_cast<uint32_t>((qw1 >> 50) & 0x3fff);
        continue;
      }
      if (dtype != kDtypeData) continue;  // nothing for the device (e.g. already done)
      buffers++;
      const uint32_t cmd = static_cast<uint32_t>((qw1 >> 4) & 0x3ff);
      const uint32_t size = static_cast<uint32_t>((qw1 >> 34) & 0x3fff);
      // At most kMaxTsoBuffers + 1 buffers are read: the next one ends the packet below.
      if (cmd & kCmdRs) rs[nrs++] = {d + 8, qw1};
      // A packet counts one error, for its first bad buffer; the rest of it is skipped up to its EOP.
      if (bad) {
        // already dropping
      } else if (size == 0) {
        counts[kBadLength]++;
        bad = true;
      } else {
        uint8_t* data = nullptr;
        switch (mem.Find(qw0, size, Access::kRead, &data)) {
          case Hit::kOk:
            p.parts[p.nparts++] = {data, size};
            p.total += size;
            break;
          case Hit::kIndirect:
            pass.stop = kTxIndirect;
            break;
          case Hit::kMiss:
          case Hit::kDenied:
            counts[kBadAddress]++;
            bad = true;
            break;
        }
        if (pass.stop != kTxCaughtUp) break;
      }
      if (buffers > (p.tso ? kMaxTsoBuffers : kMaxTxBuffers)) {
        // A packet that never ends: dropped here, and the next descriptor starts a new one.
        if (!bad) counts[kNoEop]++;
        bad = true;
        ended = true;
        break;
      }
      if (cmd & kCmdEop) {
        p.cmd = cmd;
        p.offset = static_cast<uint32_t>((qw1 >> 16) & 0x3ffff);
        p.l2tag1 = static_cast<uint16_t>(qw1 >> 48);
        ended = true;
        break;
      }
    }
    if (pass.stop != kTxCaughtUp || !ended) {
      // Nothing of this packet happened: it is read again from its first descriptor next time.
      if (pass.stop == kTxCaughtUp) pass.stop = kTxIncomplete;
      pos = start;
      break;
    }
    if (!bad) {
      if (p.total < kMinFrame || p.total > kMaxTso || (!p.tso && p.total > kMaxFrame)) {
        counts[kDropped]++;
      } else if (!sink.Packet(p, counts)) {
        pass.stop = kTxAborted;
        pos = start;
        break;
      }
    }
    for (uint32_t i = 0; i < nrs; i++) {
      StoreRelease64(rs[i].at, (rs[i].qw1 & ~0xfull) | kDtypeDone);
      mem.Stored(rs[i].at, 8);
      counts[kCompleted]++;
    }
    for (uint32_t i = 0; i < kCountSize; i++) pass.counts[i] += counts[i];
    pass.head = pos;
  }
  return pass;
}

RxResult RxWrite(const DmaSpace& mem, const RxQueue& q, uint32_t head, uint32_t tail, const uint8_t* frame,
                 size_t length, int64_t hash, int32_t l2tag1) {
  const uint32_t len = q.len;
  if (len == 0 || len > kMaxRingLen || tail >= len || head >= len) return {kRxBadIndex, head};
  if (q.buffer_size == 0 || length == 0 || length > q.max_frame) return {kRxTooBig, head};
  // No division on the way of every frame (a 64-bit divide costs tens of cycles): one buffer is the
  // common case, and ring indexes wrap by comparison.
  const size_t chunks = length <= q.buffer_size ? 1 : (length + q.buffer_size - 1) / q.buffer_size;
  if (chunks > kMaxRxChunks) return {kRxTooBig, head};
  const uint32_t free = tail >= head ? tail - head : tail + len - head;
  if (free < chunks) return {kRxNoBuffers, head};
  const uint32_t desc_size = q.desc_size == kRxDescSize16 ? kRxDescSize16 : kRxDescSize;
  DescRing descs(mem, q.ring, len, desc_size);
  if (descs.Open() != Hit::kOk) return {kRxRing, head};
  const uint32_t end = static_cast<uint32_t>((head + chunks) % len);  // the descriptors this frame takes

  uint8_t* desc[kMaxRxChunks];
  uint8_t* dest[kMaxRxChunks];
  size_t bad = chunks;  // index of the first bad buffer, chunks if none
  uint32_t at = head;
  for (size_t i = 0; i < chunks; i++) {
    Hit hit;
    desc[i] = descs.At(at, end, &hit);
    if (desc[i] == nullptr) return {hit == Hit::kIndirect ? kRxIndirect : kRxRing, head};
    at = at + 1 == len ? 0 : at + 1;
    const uint64_t pkt = Load64(desc[i]);
    const size_t part = i + 1 < chunks ? q.buffer_size : length - i * q.buffer_size;
    switch (mem.Find(pkt, part, Access::kWrite, &dest[i])) {
      case Hit::kOk:
        continue;
      case Hit::kIndirect:
        return {kRxIndirect, head};
      case Hit::kMiss:
      case Hit::kDenied:
        break;
    }
    bad = i;
    break;
  }
  // The buffers before a bad one get their part of the frame as usual; the bad one goes back to the
  // driver as a dropped packet (qword1 DD|EOF|RXE, nothing else written), so iavf_clean_rx_irq frees
  // what it gathered and the ring moves on instead of waiting on it.
  fault::Hold(fault::kWorkerHold);  // tests: a write whose buffers were looked up, not yet written
  const uint64_t qw0 = hash >= 0 ? static_cast<uint64_t>(hash) << 32 : 0;
  const uint64_t offloads = bad < chunks ? 0 : RxOffloadBits(frame, length);
  const size_t good = bad < chunks ? bad : chunks;
  for (size_t i = 0; i < good; i++) {
    const size_t part = i + 1 < chunks ? q.buffer_size : length - i * q.buffer_size;
    std::memcpy(dest[i], frame + i * q.buffer_size, part);
    mem.Stored(dest[i], part);
  }
  for (size_t i = 0; i < good; i++) {
    const size_t part = i + 1 < chunks ? q.buffer_size : length - i * q.buffer_size;
    if (desc_size == kRxDescSize) {
      Store64(desc[i] + 16, 0);
      Store64(desc[i] + 24, 0);
      mem.Stored(desc[i] + 16, 16);
    }
    const bool last = i + 1 == chunks;
    // The stripped tag, status and PTYPE: valid on the last descriptor only (iavf reads them there).
    const bool tag = last && l2tag1 >= 0;
    Store64(desc[i], tag ? qw0 | (static_cast<uint64_t>(l2tag1 & 0xffff) << 16) : qw0);
    mem.Stored(desc[i], 8);
    uint64_t qw1 = kRxDd | (static_cast<uint64_t>(part) << kRxLengthShift);
    if (last) qw1 |= kRxEof | offloads | (tag ? kRxL2tag1p : 0);
    if (hash >= 0) qw1 |= kRxFltstatRss;
    StoreRelease64(desc[i] + 8, qw1);
    mem.Stored(desc[i] + 8, 8);
  }
  if (bad < chunks) {
    StoreRelease64(desc[bad] + 8, kRxDd | kRxEof | kRxErrRxe);
    mem.Stored(desc[bad] + 8, 8);
    return {kRxBadBuffer, static_cast<uint32_t>((head + bad + 1) % len)};
  }
  return {kRxOk, at};
}

}  // namespace iavf
}  // namespace emu
