{
  "targets": [{
    "target_name": "emu_native",
    "sources": [
      "src/module.cc",
      "src/errors.cc",
      "src/unix_socket.cc",
      "src/fd_passing.cc",
      "src/poller.cc",
      "src/mmap.cc",
      "src/eventfd.cc",
      "src/memfd.cc",
      "src/sd_notify.cc",
      "src/tap.cc",
      "src/guest_memory.cc",
      "src/guard.cc",
      "src/iavf_rings.cc",
      "src/iavf_ring_core.cc",
      "src/iavf_offloads.cc",
      "src/crc32c.cc",
      "src/offloads_binding.cc",
      "src/doorbell_watcher.cc",
      "src/memory_lock.cc",
      "src/mac_table.cc",
      "src/iavf_nic.cc",
      "src/dataplane.cc",
      "src/trap_framer.cc",
      "src/trap_channel.cc",
      "src/irq_lines.cc",
      "src/irq_writer.cc",
      "src/thread_interrupt.cc",
      "src/fault_injection.cc",
      "src/watchdog.cc",
      "src/lock_order.cc",
      "src/iavf_vectors.cc",
      "src/iavf_vectors_js.cc"
    ],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": [
      "NAPI_VERSION=8",
      "NAPI_CPP_EXCEPTIONS",
      "NODE_ADDON_API_CPP_EXCEPTIONS_ALL",
      "EMU_NATIVE_SOURCE_HASH=\"<!(node scripts/source-hash.mjs)\""
    ],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-fexceptions"]
  }]
}
