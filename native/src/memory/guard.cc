// The SIGBUS guard (see guard.h).
//
//   guardStats(): { faults, lastAddress: bigint, installed }
#include "memory/guard.h"
#include "base/uv_lock.h"

#include <signal.h>
#include <sys/mman.h>
#include <uv.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "module.h"

namespace emu {
namespace guard {
namespace {

constexpr int kChunkSlots = 4096;

// One guarded range. Written only under g_mutex (the JS thread), read by the handler: seq is odd while
// a writer changes the slot, so a reader that sees it odd or changed ignores what it read.
struct Slot {
  std::atomic<uint32_t> seq;
  std::atomic<uintptr_t> start;
  std::atomic<uintptr_t> end;
  std::atomic<uintptr_t> page;
  std::atomic<uint64_t> faults;
};

struct Chunk {
  Slot slots[kChunkSlots];
  std::atomic<Chunk*> next;
};

Chunk g_first;  // zero-initialised: every slot empty
uv_mutex_t g_mutex;
bool g_ready = false;
std::vector<Chunk*>* g_chunks;  // by index, under g_mutex
std::vector<int>* g_free;       // free slot ids, under g_mutex
int g_next_id = 0;              // slots ever handed out, under g_mutex
std::atomic<uint64_t> g_faults{0};
std::atomic<uintptr_t> g_last_address{0};
struct sigaction g_previous;
std::atomic<bool> g_installed{false};

Slot* SlotOf(int id) { return &(*g_chunks)[id / kChunkSlots]->slots[id % kChunkSlots]; }

void Write(Slot* s, uintptr_t start, uintptr_t end, uintptr_t page) {
  const uint32_t seq = s->seq.load(std::memory_order_relaxed);
  s->seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  s->start.store(start, std::memory_order_relaxed);
  s->end.store(end, std::memory_order_relaxed);
  s->page.store(page, std::memory_order_relaxed);
  s->seq.store(seq + 2, std::memory_order_release);
}

// Signal context: atomics and mmap only.
bool Repair(uintptr_t address) {
  for (Chunk* c = &g_first; c != nullptr; c = c->next.load(std::memory_order_acquire)) {
    for (Slot& s : c->slots) {
      const uint32_t seq = s.seq.load(std::memory_order_acquire);
      if (seq & 1) continue;
      const uintptr_t start = s.start.load(std::memory_order_relaxed);
      const uintptr_t end = s.end.load(std::memory_order_relaxed);
      const uintptr_t page = s.page.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.seq.load(std::memory_order_relaxed) != seq) continue;
      if (address < start || address >= end || page == 0) continue;
      // A private zero page where the file has no page (truncated away, or a hole the filesystem
      // could not fill): the access completes and reads zeros; writes go nowhere. Only that page: the
      // file may be whole after it. The fault poisons the mapping (Poisoned()), so emu stops using it
      // and few pages ever get here. munmap of the whole range later removes the page with the rest.
      void* at = reinterpret_cast<void*>(address & ~(page - 1));
      if (mmap(at, page, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) ==
          MAP_FAILED) {
        return false;
      }
      s.faults.fetch_add(1, std::memory_order_relaxed);
      g_faults.fetch_add(1, std::memory_order_relaxed);
      g_last_address.store(address, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

void OnSigbus(int sig, siginfo_t* info, void* context) {
  if (info != nullptr && info->si_code == BUS_ADRERR && Repair(reinterpret_cast<uintptr_t>(info->si_addr))) return;
  // Not guest memory: whatever handled SIGBUS before us decides, by default the end of the process.
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) {
      g_previous.sa_sigaction(sig, info, context);
      return;
    }
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  // Default action: restore it. A fault runs its access again and takes it; a sent signal (kill,
  // tgkill: si_code <= 0) would not come back by itself, so it is raised again.
  signal(SIGBUS, SIG_DFL);
  if (info == nullptr || info->si_code <= 0) raise(SIGBUS);
}

bool Install() {
  if (g_installed.load()) return true;
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_sigaction = OnSigbus;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGBUS, &action, &g_previous) != 0) return false;
  g_installed.store(true);
  return true;
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("faults", Napi::Number::New(env, static_cast<double>(g_faults.load())));
  o.Set("lastAddress", Napi::BigInt::New(env, static_cast<uint64_t>(g_last_address.load())));
  o.Set("installed", Napi::Boolean::New(env, g_installed.load()));
  return o;
}

}  // namespace

int Register(void* start, size_t length, size_t page) {
  if (!g_ready) return -1;
  UvLock lock(&g_mutex, lock_order::kLeaf);
  if (!Install()) return -1;
  int id;
  if (!g_free->empty()) {
    id = g_free->back();
    g_free->pop_back();
  } else {
    id = g_next_id++;
    if (id / kChunkSlots >= static_cast<int>(g_chunks->size())) {
      Chunk* chunk = new Chunk();
      g_chunks->back()->next.store(chunk, std::memory_order_release);
      g_chunks->push_back(chunk);
    }
  }
  Slot* s = SlotOf(id);
  s->faults.store(0, std::memory_order_relaxed);
  const uintptr_t base = reinterpret_cast<uintptr_t>(start);
  Write(s, base, base + length, page);
  return id;
}

void Unregister(int id) {
  if (id < 0 || !g_ready) return;
  UvLock lock(&g_mutex, lock_order::kLeaf);
  Write(SlotOf(id), 0, 0, 0);
  g_free->push_back(id);
}

const std::atomic<uint64_t>* FaultCounter(int id) {
  if (id < 0 || !g_ready) return nullptr;
  UvLock lock(&g_mutex, lock_order::kLeaf);
  return &SlotOf(id)->faults;
}

void Init(Napi::Env env, Napi::Object exports) {
  // Process-wide (the module may load in several threads' environments): set up once.
  static bool once = [] {
    uv_mutex_init(&g_mutex);
    g_chunks = new std::vector<Chunk*>{&g_first};
    g_free = new std::vector<int>();
    g_ready = true;
    return true;
  }();
  (void)once;
  exports.Set("guardStats", Napi::Function::New(env, Stats, "guardStats"));
}

}  // namespace guard

void InitGuard(Napi::Env env, Napi::Object exports) { guard::Init(env, exports); }

}  // namespace emu
