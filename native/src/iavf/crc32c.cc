#include "iavf/crc32c.h"

#include <array>

namespace emu {
namespace {

constexpr uint32_t kPolynomial = 0x82f63b78;

// Eight tables: table[k][b] is byte b's CRC followed by k zero bytes, so eight input bytes cost eight
// lookups and no per-bit work (the slicing-by-8 method).
constexpr std::array<std::array<uint32_t, 256>, 8> MakeTables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t b = 0; b < 256; b++) {
    uint32_t c = b;
    for (int i = 0; i < 8; i++) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
    t[0][b] = c;
  }
  for (int k = 1; k < 8; k++) {
    for (uint32_t b = 0; b < 256; b++) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
  }
  return t;
}

constexpr auto kTables = MakeTables();

}  // namespace

uint32_t Crc32c(const uint8_t* data, size_t length, uint32_t previous) {
  uint32_t crc = ~previous;
  size_t i = 0;
  for (; i + 8 <= length; i += 8) {
    const uint32_t lo = crc ^ (static_cast<uint32_t>(data[i]) | static_cast<uint32_t>(data[i + 1]) << 8 |
                               static_cast<uint32_t>(data[i + 2]) << 16 | static_cast<uint32_t>(data[i + 3]) << 24);
    crc = kTables[7][lo & 0xff] ^ kTables[6][(lo >> 8) & 0xff] ^ kTables[5][(lo >> 16) & 0xff] ^
          kTables[4][lo >> 24] ^ kTables[3][data[i + 4]] ^ kTables[2][data[i + 5]] ^ kTables[1][data[i + 6]] ^
          kTables[0][data[i + 7]];
  }
  for (; i < length; i++) crc = (crc >> 8) ^ kTables[0][(crc ^ data[i]) & 0xff];
  return ~crc;
}

}  // namespace emu
