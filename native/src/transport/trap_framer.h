// TrapFramer: splits a vfio-user byte stream into what a native thread answers itself (complete
// REGION_READ / REGION_WRITE commands small enough to be register accesses) and what goes on to
// JavaScript, byte for byte, in order. Plain C++ (no Node), so a fuzzer can drive it.
//
// Fds: Linux ends a read inside the write that carried fds, so a chunk's fds belong to the message
// holding its last byte (see transport/framer.ts in @emu/vfio-user, which frames what is passed on).
// A message that comes with fds is never answered natively, and the framer tells its sink where the
// chunk's fds attach among the bytes passed on (EndChunk), so JavaScript gives them to the same message.
//
// Message lengths follow the JavaScript framer's rules, so both agree where every message starts: a
// header with size < 16 counts as 16 bytes, any other as `size` bytes (oversized ones are passed on
// whole; JavaScript skips them).
#pragma once

#include <cstddef>
#include <cstdint>

#include "transport/vfio_user_wire.h"

namespace emu {

class TrapFramer {
 public:
  class Sink {
   public:
    virtual ~Sink() = default;
    // Bytes for JavaScript, in stream order.
    virtual void Forward(const uint8_t* data, size_t n) = 0;
    // The chunk just pushed had fds: they belong with the last byte forwarded.
    virtual void EndChunk() = 0;
    // A complete, fd-less REGION_READ/WRITE of `size` bytes; true if answered (it is then dropped
    // from the stream), false to pass it on.
    virtual bool Serve(const uint8_t* message, size_t size) = 0;
  };

  void Push(const uint8_t* data, size_t n, bool has_fds, Sink& sink);

  // Whether the next byte pushed starts a message.
  bool AtBoundary() const { return have_ == 0 && forward_left_ == 0; }

  // Whether a message with this header (kHeaderSize bytes) may be answered natively; its size then
  // is at most kMaxTrapMessage.
  static bool Candidate(const uint8_t* header);

 private:
  void Reset() {
    have_ = 0;
    flushed_ = 0;
    tainted_ = false;
  }

  uint8_t head_[wire::kMaxTrapMessage] = {};
  size_t have_ = 0;     // bytes of the current message held in head_
  size_t flushed_ = 0;  // of those, already passed on (the message is then not answered natively)
  bool tainted_ = false;
  uint64_t forward_left_ = 0;  // bytes of the current message still to pass on as they come
};

}  // namespace emu
