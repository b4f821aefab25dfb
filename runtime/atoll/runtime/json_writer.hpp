// Telemetry as JSON lines: one object per event, for operators and log
// shippers.
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "atoll/runtime/telemetry.hpp"

namespace atl::telemetry {

/// Renders an event as one JSON object on one line, without the newline:
/// `{"event":["atoll","connection","start"],"measurements":{...},"metadata":{...}}`.
/// Fields keep their names and order; numbers stay numbers; a field named
/// `data` (bytes sent or received) is written as a string of hex digits;
/// other strings that are not valid UTF-8 get U+FFFD for each bad byte.
std::string to_json(const event& ev);

/// Writes every event of a bus (or of a prefix of event names) to a stream,
/// one JSON line each (`to_json`). Lines from different threads never
/// interleave: each is written whole under a lock and flushed. Writing runs
/// on the emitting thread.
class json_writer {
public:
  /// Attaches to `events` for names starting with `prefix` (empty: all) and
  /// writes to `out` (not closed by the writer; it must outlive it).
  json_writer(std::shared_ptr<bus> events, std::FILE* out, event_name prefix = {});

  /// Detaches; no line is written once it returns.
  ~json_writer();

  json_writer(const json_writer&) = delete;
  json_writer& operator=(const json_writer&) = delete;

  /// The number of lines written so far.
  uint64_t lines() const;

private:
  void write(const event& ev);

  std::shared_ptr<bus> events_;
  std::FILE* out_;
  mutable std::mutex mtx_;
  uint64_t lines_ = 0;
  subscription sub_ = 0;
};

} // namespace atl::telemetry
