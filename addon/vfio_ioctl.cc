#include "vfio_ioctl.h"

#include <linux/vfio.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "args.h"
#include "debug_log.h"
#include "errors.h"
#include "fd_args.h"
#include "retry_eintr.h"
#include "shared_memory.h"

namespace xpci {
namespace {

const std::string kNoPath;

// One ioctl; a failure throws a NativeError with syscall 'ioctl' and the request's name in the message.
template <typename Arg>
int Ioctl(Napi::Env env, int fd, unsigned long request, const char* name, Arg arg) {
  int rc = RetryEintr([&] { return ::ioctl(fd, request, arg); });
  if (rc < 0) {
    int err = errno;
    XPCI_LOG("ioctl fd=%d %s -> %s", fd, name, ErrnoName(err));
    ThrowErrno(env, err, "ioctl", kNoPath, name);
  }
  XPCI_LOG("ioctl fd=%d %s -> %d", fd, name, rc);
  return rc;
}

#define XPCI_IOCTL(env, fd, request, arg) Ioctl(env, fd, request, #request, arg)

Napi::BigInt U64(Napi::Env env, uint64_t value) { return Napi::BigInt::New(env, value); }

uint32_t U32Arg(const Site& site, const Napi::Value& value, const char* name) {
  return static_cast<uint32_t>(IntegerArg(site, value, name, UINT32_MAX));
}

}  // namespace

Napi::Object VfioConstants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  auto set = [&](const char* name, double value) { c.Set(name, Napi::Number::New(env, value)); };
  set("API_VERSION", VFIO_API_VERSION);
  set("TYPE1_IOMMU", VFIO_TYPE1_IOMMU);
  set("TYPE1v2_IOMMU", VFIO_TYPE1v2_IOMMU);
  set("NOIOMMU_IOMMU", VFIO_NOIOMMU_IOMMU);
  set("GROUP_FLAGS_VIABLE", VFIO_GROUP_FLAGS_VIABLE);
  set("GROUP_FLAGS_CONTAINER_SET", VFIO_GROUP_FLAGS_CONTAINER_SET);
  set("DEVICE_FLAGS_RESET", VFIO_DEVICE_FLAGS_RESET);
  set("DEVICE_FLAGS_PCI", VFIO_DEVICE_FLAGS_PCI);
  set("REGION_INFO_FLAG_READ", VFIO_REGION_INFO_FLAG_READ);
  set("REGION_INFO_FLAG_WRITE", VFIO_REGION_INFO_FLAG_WRITE);
  set("REGION_INFO_FLAG_MMAP", VFIO_REGION_INFO_FLAG_MMAP);
  set("PCI_BAR0_REGION_INDEX", VFIO_PCI_BAR0_REGION_INDEX);
  set("PCI_ROM_REGION_INDEX", VFIO_PCI_ROM_REGION_INDEX);
  set("PCI_CONFIG_REGION_INDEX", VFIO_PCI_CONFIG_REGION_INDEX);
  set("PCI_INTX_IRQ_INDEX", VFIO_PCI_INTX_IRQ_INDEX);
  set("PCI_MSI_IRQ_INDEX", VFIO_PCI_MSI_IRQ_INDEX);
  set("PCI_MSIX_IRQ_INDEX", VFIO_PCI_MSIX_IRQ_INDEX);
  set("IRQ_INFO_EVENTFD", VFIO_IRQ_INFO_EVENTFD);
  set("IRQ_INFO_MASKABLE", VFIO_IRQ_INFO_MASKABLE);
  set("IRQ_INFO_AUTOMASKED", VFIO_IRQ_INFO_AUTOMASKED);
  set("IRQ_INFO_NORESIZE", VFIO_IRQ_INFO_NORESIZE);
  set("IRQ_SET_DATA_NONE", VFIO_IRQ_SET_DATA_NONE);
  set("IRQ_SET_DATA_BOOL", VFIO_IRQ_SET_DATA_BOOL);
  set("IRQ_SET_DATA_EVENTFD", VFIO_IRQ_SET_DATA_EVENTFD);
  set("IRQ_SET_ACTION_MASK", VFIO_IRQ_SET_ACTION_MASK);
  set("IRQ_SET_ACTION_UNMASK", VFIO_IRQ_SET_ACTION_UNMASK);
  set("IRQ_SET_ACTION_TRIGGER", VFIO_IRQ_SET_ACTION_TRIGGER);
  set("DMA_MAP_FLAG_READ", VFIO_DMA_MAP_FLAG_READ);
  set("DMA_MAP_FLAG_WRITE", VFIO_DMA_MAP_FLAG_WRITE);
  return c;
}

Napi::Value VfioGetApiVersion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(Site{env, "ioctl", kNoPath}, info[0]);
  return Napi::Number::New(env, XPCI_IOCTL(env, fd, VFIO_GET_API_VERSION, 0));
}

Napi::Value VfioCheckExtension(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "ioctl", kNoPath};
  int fd = FdArg(site, info[0]);
  unsigned long extension = U32Arg(site, info[1], "extension");
  return Napi::Number::New(env, XPCI_IOCTL(env, fd, VFIO_CHECK_EXTENSION, extension));
}

void VfioSetIommu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "ioctl", kNoPath};
  int fd = FdArg(site, info[0]);
  unsigned long type = U32Arg(site, info[1], "type");
  XPCI_IOCTL(env, fd, VFIO_SET_IOMMU, type);
}

Napi::Value VfioGroupGetStatus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(Site{env, "ioctl", kNoPath}, info[0]);
  vfio_group_status status{};
  status.argsz = sizeof status;
  XPCI_IOCTL(env, fd, VFIO_GROUP_GET_STATUS, &status);
  return Napi::Number::New(env, status.flags);
}

void VfioGroupSetContainer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "ioctl", kNoPath};
  int group = FdArg(site, info[0], "groupFd");
  int32_t container = FdArg(site, info[1], "containerFd");
  XPCI_IOCTL(env, group, VFIO_GROUP_SET_CONTAINER, &container);
}

void VfioGroupUnsetContainer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int group = FdArg(Site{env, "ioctl", kNoPath}, info[0], "groupFd");
  XPCI_IOCTL(env, group, VFIO_GROUP_UNSET_CONTAINER, 0);
}

Napi::Value VfioGroupGetDeviceFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "ioctl", kNoPath};
  int group = FdArg(site, info[0], "groupFd");
  std::string name = PathArg(site, info[1]);
  return Napi::Number::New(env, XPCI_IOCTL(env, group, VFIO_GROUP_GET_DEVICE_FD, name.c_str()));
}

Napi::Value VfioDeviceGetInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(Site{env, "ioctl", kNoPath}, info[0]);
  vfio_device_info device{};
  device.argsz = sizeof device;
  XPCI_IOCTL(env, fd, VFIO_DEVICE_GET_INFO, &device);
  Napi::Object result = Napi::Object::New(env);
  result.Set("flags", Napi::Number::New(env, device.flags));
  result.Set("numRegions", Napi::Number::New(env, device.num_regions));
  result.Set("numIrqs", Napi::Number::New(env, device.num_irqs));
  return result;
}

// Two calls when the region has capabilities: the first tells the size (argsz) the chain needs.
Napi::Value VfioDeviceGetRegionInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "ioctl", kNoPath};
  int fd = FdArg(site, info[0]);
  uint32_t index = U32Arg(site, info[1], "index");
  std::vector<uint64_t> storage((sizeof(vfio_region_info) + 7) / 8);  // 8-byte aligned for the caps
  auto region = [&] { return reinterpret_cast<vfio_region_info*>(storage.data()); };
  region()->argsz = sizeof(vfio_region_info);
  region()->index = index;
  XPCI_IOCTL(env, fd, VFIO_DEVICE_GET_REGION_INFO, region());
  if ((region()->flags & VFIO_REGION_INFO_FLAG_CAPS) && region()->argsz > sizeof(vfio_region_info)) {
    uint32_t needed = region()->argsz;
    storage.assign((needed + 7) / 8, 0);
    region()->argsz = needed;
    region()->index = index;
    XPCI_IOCTL(env, fd, VFIO_DEVICE_GET_REGION_INFO, region());
  }
  const vfio_region_info* r = region();
  Napi::Object result = Napi::Object::New(env);
  result.Set("index", Napi::Number::New(env, r->index));
  result.Set("flags", Napi::Number::New(env, r->flags));
  result.Set("size", U64(env, r->size));
  result.Set("offset", U64(env, r->offset));
  result.Set("sparseMmap", env.Null());
  const size_t total = storage.size() * 8;
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(storage.data());
  uint32_t next = (r->flags & VFIO_REGION_INFO_FLAG_CAPS) ? r->cap_offset : 0;
  for (int hops = 0; next != 0 && hops < 64; hops++) {  // bounded: a broken chain cannot loop
    if (next + sizeof(vfio_info_cap_header) > total) break;
    const auto* header = reinterpret_cast<const vfio_info_cap_header*>(bytes + next);
    if (header->id == VFIO_REGION_INFO_CAP_SPARSE_MMAP && next + sizeof(vfio_region_info_cap_sparse_mmap) <= total) {
      const auto* sparse = reinterpret_cast<const vfio_region_info_cap_sparse_mmap*>(header);
      size_t fits = (total - next - sizeof(vfio_region_info_cap_sparse_mmap)) / sizeof(vfio_region_sparse_mmap_area);
      uint32_t count = sparse->nr_areas < fits ? sparse->nr_areas : static_cast<uint32_t>(fits);
      Napi::Array areas = Napi::Array::New(env, count);
      for (uint32_t i = 0; i < count; i++) {
        Napi::Object area = Napi::Object::New(env);
        area.Set("offset", U64(env, sparse->areas[i].offset));
        area.Set("size", U64(env, sparse->areas[i].size));
        areas.Set(i, area);
      }
      result.Set("sparseMmap", areas);
    }
    next = header->next;
  }
  return result;
}

Napi::Value VfioDeviceGetIrqInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "ioctl", kNoPath};
  int fd = FdArg(site, info[0]);
  vfio_irq_info irq{};
  irq.argsz = sizeof irq;
  irq.index = U32Arg(site, info[1], "index");
  XPCI_IOCTL(env, fd, VFIO_DEVICE_GET_IRQ_INFO, &irq);
  Napi::Object result = Napi::Object::New(env);
  result.Set("flags", Napi::Number::New(env, irq.flags));
  result.Set("count", Napi::Number::New(env, irq.count));
  return result;
}

// data: the bytes after the header as the kernel reads them (an __s32 eventfd or a __u8 bool per
// vector), built by the caller; absent for DATA_NONE.
void VfioDeviceSetIrqs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "ioctl", kNoPath};
  int fd = FdArg(site, info[0]);
  uint32_t flags = U32Arg(site, info[1], "flags");
  uint32_t index = U32Arg(site, info[2], "index");
  uint32_t start = U32Arg(site, info[3], "start");
  uint32_t count = U32Arg(site, info[4], "count");
  size_t dataLength = 0;
  const uint8_t* data = nullptr;
  if (!info[5].IsUndefined()) {
    if (!info[5].IsTypedArray() || info[5].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      ThrowCheck(env, EINVAL, "ioctl", kNoPath, "data must be a Buffer or Uint8Array");
    }
    Napi::Uint8Array bytes = info[5].As<Napi::Uint8Array>();
    dataLength = bytes.ByteLength();
    data = bytes.Data();
  }
  std::vector<uint64_t> storage((sizeof(vfio_irq_set) + dataLength + 7) / 8);
  auto* set = reinterpret_cast<vfio_irq_set*>(storage.data());
  set->argsz = static_cast<uint32_t>(sizeof(vfio_irq_set) + dataLength);
  set->flags = flags;
  set->index = index;
  set->start = start;
  set->count = count;
  if (dataLength > 0) std::memcpy(set->data, data, dataLength);
  XPCI_IOCTL(env, fd, VFIO_DEVICE_SET_IRQS, set);
}

void VfioDeviceReset(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(Site{env, "ioctl", kNoPath}, info[0]);
  XPCI_IOCTL(env, fd, VFIO_DEVICE_RESET, 0);
}

void VfioIommuMapDma(const Napi::CallbackInfo& info, const Napi::FunctionReference& sharedMemoryClass) {
  Napi::Env env = info.Env();
  Site site{env, "ioctl", kNoPath};
  int fd = FdArg(site, info[0], "containerFd");
  if (!info[1].IsObject() || !info[1].As<Napi::Object>().InstanceOf(sharedMemoryClass.Value())) {
    ThrowCheck(env, EINVAL, "ioctl", kNoPath, "memory must be a SharedMemory");
  }
  SharedMemory* memory = SharedMemory::Unwrap(info[1].As<Napi::Object>());
  uint64_t memoryOffset = IntegerArg(site, info[2], "memoryOffset", kMaxSafeInteger);
  uint64_t size = IntegerArg(site, info[3], "size", kMaxSafeInteger);
  vfio_iommu_type1_dma_map map{};
  map.argsz = sizeof map;
  map.iova = U64Arg(site, info[4], "iova");
  map.flags = U32Arg(site, info[5], "flags");
  map.vaddr = reinterpret_cast<uintptr_t>(memory->Range(env, "ioctl", memoryOffset, size));
  map.size = size;
  XPCI_IOCTL(env, fd, VFIO_IOMMU_MAP_DMA, &map);
}

Napi::Value VfioIommuUnmapDma(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Site site{env, "ioctl", kNoPath};
  int fd = FdArg(site, info[0], "containerFd");
  vfio_iommu_type1_dma_unmap unmap{};
  unmap.argsz = sizeof unmap;
  unmap.iova = U64Arg(site, info[1], "iova");
  unmap.size = U64Arg(site, info[2], "size");
  unmap.flags = info[3].IsUndefined() ? 0 : U32Arg(site, info[3], "flags");
  XPCI_IOCTL(env, fd, VFIO_IOMMU_UNMAP_DMA, &unmap);
  return U64(env, unmap.size);  // the kernel reports how much it unmapped
}

}  // namespace xpci
