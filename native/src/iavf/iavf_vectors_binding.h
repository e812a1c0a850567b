// The Vectors behind a JS IavfVectors object, for the data plane's NICs that raise them.
#pragma once

#include <napi.h>

#include <memory>

#include "iavf/iavf_vectors.h"

namespace emu {

// nullptr unless v is an open IavfVectors.
std::shared_ptr<iavf::Vectors> IavfVectorsOf(Napi::Value v);

}  // namespace emu
