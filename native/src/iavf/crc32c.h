// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), as SCTP's checksum (RFC 4960 appendix B) and
// iSCSI (RFC 3720 appendix B.4, whose test vectors lib/offloads.test.ts checks) define it. Plain C++.
#pragma once

#include <cstddef>
#include <cstdint>

namespace emu {

// The CRC of length bytes, continuing from a previous call's result (0 to start).
uint32_t Crc32c(const uint8_t* data, size_t length, uint32_t previous = 0);

}  // namespace emu
