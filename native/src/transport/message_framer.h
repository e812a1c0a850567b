// MessageFramer: splits a vfio-user byte stream into messages and gives each the fds that came with
// it. Every vfio-user connection of emu is framed here, once: the server's (TrapChannel, whose socket
// thread answers trapped register accesses itself) and the client's. Plain C++ (no Node), so a fuzzer
// can drive it.
//
// Fds: Linux ends a recvmsg right after data that carried SCM_RIGHTS (it may glue earlier fd-less data
// in front), so the write that carried a chunk's fds holds the chunk's last byte. A sender writes a
// message with its fds at once, so a message owns the fds of every chunk whose last byte is inside it.
//
// Framing errors (spec: "Message header"): a header whose size is below the header's 16 bytes is a
// frame of its own, those 16 bytes (all one can resynchronise on); a message above maxMessage is
// passed on as its header alone and the rest of it skipped. Either way the caller answers it (an
// error reply to a command) and the fds that came with it are handed over with it, to be released.
//
// Bounds: at most one message is held while it arrives (maxMessage bytes), and at most maxFds fds for
// messages not complete yet; fds beyond that are released as they arrive and the message they came for
// counts them (`excess`), so the caller refuses it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "transport/vfio_user_wire.h"

namespace emu {

class MessageFramer {
 public:
  enum Kind : uint8_t { kMessage = 0, kOversized = 1, kUndersized = 2 };

  struct Frame {
    Kind kind = kMessage;
    std::vector<uint8_t> bytes;  // the whole message; the header alone for the other kinds
    std::vector<int> fds;        // the caller owns them
    uint32_t excess = 0;         // a message's fds that came beyond the bound (released already)
  };

  class Sink {
   public:
    virtual ~Sink() = default;
    virtual void Deliver(Frame&& frame) = 0;
    // A complete, fd-less message that may be a trapped access (Candidate): true if the sink answered
    // it (it is then dropped from the stream).
    virtual bool Serve(const uint8_t* message, size_t size) = 0;
    // An fd nobody will take (beyond the bound, or inside a skipped message).
    virtual void Release(int fd) = 0;
  };

  MessageFramer(size_t max_message, size_t max_fds) : max_message_(max_message), max_fds_(max_fds) {}

  // A received chunk and the fds that came with it (owned from here).
  void Push(const uint8_t* data, size_t n, std::vector<int> fds, Sink& sink);

  // Whether the next byte pushed starts a message (nothing of one is held or skipped).
  bool AtBoundary() const { return held_.empty() && skip_ == 0; }
  size_t HeldFds() const { return held_fds_; }
  // The fds still waiting for their message: the caller releases them (the stream ended).
  std::vector<int> TakeHeldFds();

  // Whether a message with this header (wire::kHeaderSize bytes) may be a trapped access; its size is
  // then at most wire::kMaxTrapMessage.
  static bool Candidate(const uint8_t* header);

 private:
  struct PendingFds {
    uint64_t at;  // stream offset of the last byte of the chunk they came with
    std::vector<int> fds;
    uint32_t excess;
  };

  // Frames n bytes; and holds fds that came with the next byte (or, without one, the last byte).
  void Split(const uint8_t* data, size_t n, Sink& sink);
  void Hold(std::vector<int> fds, bool next_byte, Sink& sink);
  // The fds of the chunks whose last byte is before `end`, and how many more came with them.
  void TakeFdsBefore(uint64_t end, std::vector<int>* fds, uint32_t* excess);

  const size_t max_message_;
  const size_t max_fds_;
  std::vector<uint8_t> held_;  // the current message's bytes so far (it starts at stream offset start_)
  uint64_t start_ = 0;
  uint64_t pushed_ = 0;  // stream offset of the next byte
  uint64_t skip_ = 0;    // bytes of an oversized message still to skip
  std::deque<PendingFds> pending_;
  size_t held_fds_ = 0;
};

// Frame kinds by name, as TypeScript sees them (lib/trap-channel.ts's FrameKind).
inline constexpr const char* kFrameKindNames[] = {"message", "oversized", "undersized"};
static_assert(sizeof(kFrameKindNames) / sizeof(kFrameKindNames[0]) == MessageFramer::kUndersized + 1);

}  // namespace emu
