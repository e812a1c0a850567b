// The IrqLines behind a JS IrqLines object, for other native objects that trigger them.
#pragma once

#include <napi.h>

#include <memory>

#include "irq/irq_lines.h"

namespace emu {

// nullptr unless v is an open IrqLines.
std::shared_ptr<IrqLines> IrqLinesOf(Napi::Value v);

}  // namespace emu
