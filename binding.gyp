{
  "variables": {
    "xpci_debug%": "<!(node -p \"process.env.XPCI_DEBUG || 0\")"
  },
  "targets": [
    {
      "target_name": "xpci_native",
      "sources": [
        "addon/args.cc",
        "addon/bus_error_guard.cc",
        "addon/debug_log.cc",
        "addon/errors.cc",
        "addon/eventfd.cc",
        "addon/file_lock.cc",
        "addon/fd_args.cc",
        "addon/fd_io.cc",
        "addon/fd_mmap.cc",
        "addon/fd_poller.cc",
        "addon/memfd.cc",
        "addon/memory_mapping.cc",
        "addon/module.cc",
        "addon/peer_credentials.cc",
        "addon/register_file.cc",
        "addon/shared_memory.cc",
        "addon/unix_fd_passing.cc",
        "addon/vfio_ioctl.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror=return-type"],
      "conditions": [
        ["xpci_debug==1", { "defines": ["XPCI_DEBUG=1"] }]
      ],
      "configurations": {
        "Debug": { "defines": ["XPCI_DEBUG=1", "XPCI_DEBUG_BUILD=1"] }
      }
    }
  ]
}
