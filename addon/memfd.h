// memfd_create + ftruncate: anonymous memory with an fd, the backing of DMA windows (it can be mapped
// here, pinned by VFIO_IOMMU_MAP_DMA, and handed to another process).
#pragma once

#include <napi.h>

namespace xpci {

Napi::Value MemfdCreate(const Napi::CallbackInfo& info);  // (name, size) -> fd (close-on-exec)

}  // namespace xpci
