// Entry point of xpci_native: the functions of `NativeBinding` (src/native/binding.ts).
// Context-aware (one Addon instance per Node environment, e.g. per worker), no global mutable state.
#include <napi.h>

#include "debug_log.h"
#include "file_lock.h"
#include "eventfd.h"
#include "fd_io.h"
#include "fd_poller.h"
#include "memfd.h"
#include "memory_mapping.h"
#include "peer_credentials.h"
#include "register_file.h"
#include "shared_memory.h"
#include "vfio_ioctl.h"
#include "unix_fd_passing.h"

namespace xpci {

class XpciAddon : public Napi::Addon<XpciAddon> {
 public:
  XpciAddon(Napi::Env env, Napi::Object exports)
      : registerFileClass_(Napi::Persistent(RegisterFile::Class(env))),
        memoryMappingClass_(Napi::Persistent(MemoryMapping::Class(env))),
        sharedMemoryClass_(Napi::Persistent(SharedMemory::Class(env))),
        fdPollerClass_(Napi::Persistent(FdPoller::Class(env))),
        readableWatcherClass_(Napi::Persistent(ReadableWatcher::Class(env))) {
    DefineAddon(exports, {
                             InstanceMethod<&XpciAddon::OpenRegisterFile>("openRegisterFile"),
                             InstanceMethod<&XpciAddon::MapResource>("mapResource"),
                             InstanceMethod<&XpciAddon::MapFd>("mapFd"),
                             InstanceMethod<&XpciAddon::MapSharedMemory>("mapSharedMemory"),
                             InstanceMethod<&XpciAddon::WatchFd>("watchFd"),
                             InstanceMethod<&XpciAddon::VfioMapDma>("vfioIommuMapDma"),
                             InstanceMethod<&XpciAddon::Call<MemfdCreate>>("memfdCreate"),
                             InstanceMethod<&XpciAddon::Call<EventfdCreate>>("eventfdCreate"),
                             InstanceMethod<&XpciAddon::Call<EventfdRead>>("eventfdRead"),
                             InstanceMethod<&XpciAddon::Do<EventfdWrite>>("eventfdWrite"),
                             InstanceMethod<&XpciAddon::Call<FdReadRegister>>("fdReadRegister"),
                             InstanceMethod<&XpciAddon::Do<FdWriteRegister>>("fdWriteRegister"),
                             InstanceMethod<&XpciAddon::Do<CloseFd>>("closeFd"),
                             InstanceMethod<&XpciAddon::Call<VfioGetApiVersion>>("vfioGetApiVersion"),
                             InstanceMethod<&XpciAddon::Call<VfioCheckExtension>>("vfioCheckExtension"),
                             InstanceMethod<&XpciAddon::Do<VfioSetIommu>>("vfioSetIommu"),
                             InstanceMethod<&XpciAddon::Call<VfioGroupGetStatus>>("vfioGroupGetStatus"),
                             InstanceMethod<&XpciAddon::Do<VfioGroupSetContainer>>("vfioGroupSetContainer"),
                             InstanceMethod<&XpciAddon::Do<VfioGroupUnsetContainer>>("vfioGroupUnsetContainer"),
                             InstanceMethod<&XpciAddon::Call<VfioGroupGetDeviceFd>>("vfioGroupGetDeviceFd"),
                             InstanceMethod<&XpciAddon::Call<VfioDeviceGetInfo>>("vfioDeviceGetInfo"),
                             InstanceMethod<&XpciAddon::Call<VfioDeviceGetRegionInfo>>("vfioDeviceGetRegionInfo"),
                             InstanceMethod<&XpciAddon::Call<VfioDeviceGetIrqInfo>>("vfioDeviceGetIrqInfo"),
                             InstanceMethod<&XpciAddon::Do<VfioDeviceSetIrqs>>("vfioDeviceSetIrqs"),
                             InstanceMethod<&XpciAddon::Do<VfioDeviceReset>>("vfioDeviceReset"),
                             InstanceMethod<&XpciAddon::Call<VfioIommuUnmapDma>>("vfioIommuUnmapDma"),
                             InstanceMethod<&XpciAddon::PeerCredentialsOf>("peerCredentials"),
                             InstanceMethod<&XpciAddon::LockExclusiveFd>("lockExclusive"),
                             InstanceMethod<&XpciAddon::BuildInfo>("buildInfo"),
                             InstanceValue("vfioConstants", VfioConstants(env), napi_enumerable),
                             InstanceMethod<&XpciAddon::SendWithFdsOn>("sendWithFds"),
                             InstanceMethod<&XpciAddon::ReceiveWithFdsOn>("receiveWithFds"),
                             InstanceMethod<&XpciAddon::DuplicateFdOf>("duplicateFd"),
                             InstanceMethod<&XpciAddon::ConnectUnixStreamTo>("connectUnixStream"),
                             InstanceMethod<&XpciAddon::WatchReadable>("watchReadable"),
                         });
  }

 private:
  Napi::Value OpenRegisterFile(const Napi::CallbackInfo& info) { return RegisterFile::Open(info, registerFileClass_); }

  Napi::Value MapResource(const Napi::CallbackInfo& info) { return MemoryMapping::Map(info, memoryMappingClass_); }

  Napi::Value MapFd(const Napi::CallbackInfo& info) { return MemoryMapping::MapFd(info, memoryMappingClass_); }

  Napi::Value MapSharedMemory(const Napi::CallbackInfo& info) { return SharedMemory::Map(info, sharedMemoryClass_); }

  Napi::Value WatchFd(const Napi::CallbackInfo& info) { return FdPoller::Start(info, fdPollerClass_); }

  void VfioMapDma(const Napi::CallbackInfo& info) { VfioIommuMapDma(info, sharedMemoryClass_); }

  // Plain functions that need no per-environment state.
  template <Napi::Value (*F)(const Napi::CallbackInfo&)>
  Napi::Value Call(const Napi::CallbackInfo& info) { return F(info); }
  template <void (*F)(const Napi::CallbackInfo&)>
  void Do(const Napi::CallbackInfo& info) { F(info); }

  Napi::Value PeerCredentialsOf(const Napi::CallbackInfo& info) { return PeerCredentials(info); }

  Napi::Value LockExclusiveFd(const Napi::CallbackInfo& info) { return LockExclusive(info); }
  Napi::Value SendWithFdsOn(const Napi::CallbackInfo& info) { return SendWithFds(info); }
  Napi::Value ReceiveWithFdsOn(const Napi::CallbackInfo& info) { return ReceiveWithFds(info); }
  Napi::Value DuplicateFdOf(const Napi::CallbackInfo& info) { return DuplicateFd(info); }
  Napi::Value ConnectUnixStreamTo(const Napi::CallbackInfo& info) { return ConnectUnixStream(info); }
  Napi::Value WatchReadable(const Napi::CallbackInfo& info) { return ReadableWatcher::Watch(info, readableWatcherClass_); }

  Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object result = Napi::Object::New(env);
    result.Set("debugLogging", Napi::Boolean::New(env, kDebugLogging));
#ifdef XPCI_DEBUG_BUILD
    result.Set("debugBuild", Napi::Boolean::New(env, true));
#else
    result.Set("debugBuild", Napi::Boolean::New(env, false));
#endif
    result.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));  // the Node-API version built against
    return result;
  }

  Napi::FunctionReference registerFileClass_;
  Napi::FunctionReference memoryMappingClass_;
  Napi::FunctionReference sharedMemoryClass_;
  Napi::FunctionReference fdPollerClass_;
  Napi::FunctionReference readableWatcherClass_;
};

}  // namespace xpci

using xpci::XpciAddon;  // the macro pastes the name into identifiers
NODE_API_ADDON(XpciAddon)
