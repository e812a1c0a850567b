// The L2 learning table of an emu switch, in plain C++ (no Node-API): MAC learning with aging and
// moves, a capacity past which new MACs are not learned (their frames flood), and listing in learning
// order. Forwarding decisions are made from it by the data plane (forwarding.cc), for frames from
// JavaScript ports and from native NICs alike: one table per switch. Times are milliseconds from any
// fixed origin; the caller passes them (tests use a fake clock).
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace emu {

struct MacCounters {
  double learned = 0;          // new entries
  double moved = 0;            // entries that moved to another port
  double aged = 0;             // entries removed by aging
  double table_full = 0;       // source MACs not learned because the table was full
  double flooded = 0;          // frames flooded: broadcast, multicast and unknown unicast
  double unknown_unicast = 0;  // of those, unicast to an unknown (or aged-out) MAC
};

class MacTable {
 public:
  struct Row {
    uint64_t mac;
    int port;
    double last_seen;
  };

  MacTable(double aging_ms, uint32_t max_macs) : aging_ms_(aging_ms), max_macs_(max_macs) {}

  // A frame from `port` had source `mac` (not a group address). O(1) whatever the table holds: a
  // full table gives up only entries that aged out, found from the least recently seen on.
  void Learn(uint64_t mac, int port, double now);
  // The port `mac` was learned on, unless it aged out (then the entry goes); -1 if none.
  int Lookup(uint64_t mac, double now);
  // Removes every aged entry (O(n): for List).
  void Sweep(double now);
  // A port left: its MACs are forgotten.
  void Forget(int port);
  void Flush() {
    entries_.clear();
    recency_.clear();
  }
  // The entries, oldest learned first (aged entries removed first).
  std::vector<Row> List(double now);

  MacCounters counters;
  double aging_ms() const { return aging_ms_; }

 private:
  struct Entry {
    int port;
    double last_seen;
    uint64_t seq;                          // learning order
    std::list<uint64_t>::iterator recent;  // its place in recency_
  };
  void Erase(std::unordered_map<uint64_t, Entry>::iterator it);

  double aging_ms_;
  uint32_t max_macs_;
  uint64_t next_seq_ = 0;
  std::unordered_map<uint64_t, Entry> entries_;
  std::list<uint64_t> recency_;  // the MACs, least recently seen first
};

// A MAC as the number of its 6 bytes, big-endian (JavaScript's macAt).
inline uint64_t MacAt(const uint8_t* p) {
  return (static_cast<uint64_t>(p[0]) << 40) | (static_cast<uint64_t>(p[1]) << 32) | (static_cast<uint64_t>(p[2]) << 24) |
         (static_cast<uint64_t>(p[3]) << 16) | (static_cast<uint64_t>(p[4]) << 8) | p[5];
}

}  // namespace emu
