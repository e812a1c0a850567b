#include "dataplane/mac_table.h"

#include <algorithm>

namespace emu {

void MacTable::Erase(std::unordered_map<uint64_t, Entry>::iterator it) {
  recency_.erase(it->second.recent);
  entries_.erase(it);
}

void MacTable::Learn(uint64_t mac, int port, double now) {
  auto it = entries_.find(mac);
  if (it != entries_.end()) {
    if (it->second.port != port) {
      it->second.port = port;
      counters.moved++;
    }
    it->second.last_seen = now;
    recency_.splice(recency_.end(), recency_, it->second.recent);
    return;
  }
  // Full: the least recently seen entries go if they aged out. Seen in time order, the first that has
  // not aged means none behind it has.
  while (entries_.size() >= max_macs_ && !recency_.empty()) {
    auto oldest = entries_.find(recency_.front());
    if (now - oldest->second.last_seen < aging_ms_) break;
    Erase(oldest);
    counters.aged++;
  }
  if (entries_.size() >= max_macs_) {
    counters.table_full++;
    return;
  }
  recency_.push_back(mac);
  entries_.emplace(mac, Entry{port, now, next_seq_++, std::prev(recency_.end())});
  counters.learned++;
}

int MacTable::Lookup(uint64_t mac, double now) {
  auto it = entries_.find(mac);
  if (it == entries_.end()) return -1;
  if (now - it->second.last_seen < aging_ms_) return it->second.port;
  Erase(it);
  counters.aged++;
  return -1;
}

void MacTable::Sweep(double now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto next = std::next(it);
    if (now - it->second.last_seen >= aging_ms_) {
      Erase(it);
      counters.aged++;
    }
    it = next;
  }
}

void MacTable::Forget(int port) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto next = std::next(it);
    if (it->second.port == port) Erase(it);
    it = next;
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
