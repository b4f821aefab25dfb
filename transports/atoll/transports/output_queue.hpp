// Output that could not be written at once: byte buffers and file ranges,
// flushed through a transport when the socket becomes writable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "atoll/transports/transport.hpp"

namespace atl {

/// A FIFO of pending output. Owns the file descriptors of queued file ranges
/// and closes them once sent or dropped. Empty queues allocate nothing. Used
/// by one actor at a time.
class output_queue {
public:
  output_queue() = default;
  /// Takes `other`'s output; `other` is left empty (and usable).
  output_queue(output_queue&& other) noexcept;
  /// Drops this queue's output (closing queued files), then takes `other`'s;
  /// `other` is left empty (and usable).
  output_queue& operator=(output_queue&& other) noexcept;
  output_queue(const output_queue&) = delete;
  output_queue& operator=(const output_queue&) = delete;
  ~output_queue();

  /// Queues a copy of `data`.
  void append(std::string_view data);

  /// Queues `length` bytes of `file_fd` from `offset` (takes ownership of the
  /// fd).
  void append_file(int file_fd, uint64_t offset, uint64_t length);

  /// True if nothing is pending.
  bool empty() const noexcept {
    return head_ == items_.size();
  }

  /// Bytes pending (buffers and file ranges).
  uint64_t pending_bytes() const noexcept {
    return pending_;
  }

  /// Bytes of queued buffers held in memory (file ranges not counted).
  uint64_t buffered_bytes() const noexcept {
    return buffered_;
  }

  /// Writes as much as the transport takes. Returns `done` when everything
  /// is written, `want_write`/`want_read` when it must wait, `closed` or
  /// `failed` on errors. Adds what it wrote to `stats`.
  io_result flush(transport& out, socket_stats& stats);

  /// Drops everything (closing queued files).
  void clear() noexcept;

private:
  struct item {
    std::string data; // buffer item, or empty for a file range
    size_t pos = 0;   // bytes of `data` already written
    int file_fd = -1; // file range item
    uint64_t offset = 0;
    uint64_t remaining = 0;
  };

  std::vector<item> items_;
  size_t head_ = 0;
  uint64_t pending_ = 0;
  uint64_t buffered_ = 0;

  /// Frees the items before `head_` once they are a good part of the queue
  /// (a queue that never runs empty must not keep what it has sent).
  void compact() noexcept;
};

} // namespace atl
