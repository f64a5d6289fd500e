// The VFIO ioctls (linux/vfio.h) on container, group and device fds, with the kernel's own structs.
// Each entry point is one ioctl: arguments in, the struct's fields out; no policy.
#pragma once

#include <napi.h>

namespace xpci {

// vfioConstants: the flag and index values of linux/vfio.h the TypeScript side needs.
Napi::Object VfioConstants(Napi::Env env);

Napi::Value VfioGetApiVersion(const Napi::CallbackInfo& info);      // (containerFd) -> number
Napi::Value VfioCheckExtension(const Napi::CallbackInfo& info);     // (containerFd, extension) -> number
void VfioSetIommu(const Napi::CallbackInfo& info);                  // (containerFd, type)
Napi::Value VfioGroupGetStatus(const Napi::CallbackInfo& info);     // (groupFd) -> flags
void VfioGroupSetContainer(const Napi::CallbackInfo& info);         // (groupFd, containerFd)
void VfioGroupUnsetContainer(const Napi::CallbackInfo& info);       // (groupFd)
Napi::Value VfioGroupGetDeviceFd(const Napi::CallbackInfo& info);   // (groupFd, name) -> fd
Napi::Value VfioDeviceGetInfo(const Napi::CallbackInfo& info);      // (deviceFd) -> { flags, numRegions, numIrqs }
Napi::Value VfioDeviceGetRegionInfo(const Napi::CallbackInfo& info);  // (deviceFd, index) -> region
Napi::Value VfioDeviceGetIrqInfo(const Napi::CallbackInfo& info);   // (deviceFd, index) -> { flags, count }
void VfioDeviceSetIrqs(const Napi::CallbackInfo& info);  // (deviceFd, flags, index, start, count, data?: Buffer)
void VfioDeviceReset(const Napi::CallbackInfo& info);    // (deviceFd)
// (containerFd, memory: SharedMemory, memoryOffset, size, iova: bigint, flags); the mapping's address
// is the vaddr the kernel pins.
void VfioIommuMapDma(const Napi::CallbackInfo& info, const Napi::FunctionReference& sharedMemoryClass);
Napi::Value VfioIommuUnmapDma(const Napi::CallbackInfo& info);  // (containerFd, iova, size, flags) -> bytes unmapped

}  // namespace xpci
