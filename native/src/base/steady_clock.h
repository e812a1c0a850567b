// The one clock native threads time things by: nanoseconds of the steady (monotonic) clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace emu {

inline uint64_t SteadyNowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace emu
