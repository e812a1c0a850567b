#include "mac_table.h"

#include <algorithm>

namespace emu {

void MacTable::Learn(uint64_t mac, int port, double now) {
  auto it = entries_.find(mac);
  if (it != entries_.end()) {
    if (it->second.port != port) {
      it->second.port = port;
      counters.moved++;
    }
    it->second.last_seen = now;
    return;
  }
  if (entries_.size() >= max_macs_) {
    Sweep(now);
    if (entries_.size() >= max_macs_) {
      counters.table_full++;
      return;
    }
  }
  entries_.emplace(mac, Entry{port, now, next_seq_++});
  counters.learned++;
}

int MacTable::Lookup(uint64_t mac, double now) {
  auto it = entries_.find(mac);
  if (it == entries_.end()) return -1;
  if (now - it->second.last_seen < aging_ms_) return it->second.port;
  entries_.erase(it);
  counters.aged++;
  return -1;
}

void MacTable::Sweep(double now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (now - it->second.last_seen >= aging_ms_) {
      it = entries_.erase(it);
      counters.aged++;
    } else {
      ++it;
    }
  }
}

void MacTable::Forget(int port) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->second.port == port ? entries_.erase(it) : std::next(it);
  }
}

std::vector<MacTable::Row> MacTable::List(double now) {
  Sweep(now);
  std::vector<std::pair<uint64_t, Row>> rows;
  rows.reserve(entries_.size());
  for (const auto& [mac, e] : entries_) rows.push_back({e.seq, Row{mac, e.port, e.last_seen}});
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Row> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(r.second);
  return out;
}

}  // namespace emu
