// RegisterBlock: registers a native object serves itself, for the socket thread to answer
// REGION_READ / REGION_WRITE with, as it answers memory-backed areas (trap_channel.cc): a device's hot
// registers whose accesses have effects (an interrupt re-armed), so they cannot be plain memory.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>

namespace emu {

class RegisterBlock {
 public:
  virtual ~RegisterBlock() = default;
  // An access of `size` (1, 2, 4 or 8) naturally aligned bytes at `offset` into the block's area, from
  // any thread. False: not one the block serves (JavaScript's region handler gets it).
  virtual bool Read(uint64_t offset, uint32_t size, uint64_t* value) = 0;
  virtual bool Write(uint64_t offset, uint32_t size, uint64_t value) = 0;
};

// The block a JS object offers (today: IavfVectors' DYN_CTLN1 registers); nullptr if it offers none.
std::shared_ptr<RegisterBlock> RegisterBlockOf(Napi::Value v);

}  // namespace emu
