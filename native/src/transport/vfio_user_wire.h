// The few facts of the vfio-user wire format native code needs to answer register traps (spec:
// "Message header" and "VFIO_USER_REGION_READ / WRITE"). @emu/vfio-user's protocol/constants.ts is
// where the protocol lives; binding exports these (vfioUserWire) and a test there checks they agree.
#pragma once

#include <cstddef>
#include <cstdint>

namespace emu {
namespace wire {

constexpr size_t kHeaderSize = 16;  // msg_id u16, command u16, size u32, flags u32, error u32
constexpr uint16_t kRegionRead = 9;
constexpr uint16_t kRegionWrite = 10;
constexpr uint32_t kTypeMask = 0xf;
constexpr uint32_t kTypeCommand = 0;
constexpr uint32_t kTypeReply = 1;
constexpr uint32_t kNoReply = 0x10;
constexpr size_t kRegionAccessSize = 16;  // offset u64, region u32, count u32
// A trapped access moves 1, 2, 4 or 8 bytes: the biggest message a native thread answers.
constexpr size_t kMaxTrapMessage = kHeaderSize + kRegionAccessSize + 8;

}  // namespace wire
}  // namespace emu
