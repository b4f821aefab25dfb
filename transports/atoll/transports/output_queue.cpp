#include "atoll/transports/output_queue.hpp"

#include <algorithm>
#include <utility>

#include <unistd.h>

namespace atl {

namespace {

constexpr size_t max_iov = 64;
constexpr uint64_t sendfile_chunk = 1 << 20; // 1 MiB per call

} // namespace

output_queue::output_queue(output_queue&& other) noexcept
  : items_(std::move(other.items_)),
    head_(std::exchange(other.head_, 0)),
    pending_(std::exchange(other.pending_, 0)),
    buffered_(std::exchange(other.buffered_, 0)) {
  other.items_.clear();
}

output_queue& output_queue::operator=(output_queue&& other) noexcept {
  if (this != &other) {
    clear();
    items_ = std::move(other.items_);
    head_ = std::exchange(other.head_, 0);
    pending_ = std::exchange(other.pending_, 0);
    buffered_ = std::exchange(other.buffered_, 0);
    other.items_.clear();
  }
  return *this;
}

output_queue::~output_queue() {
  clear();
}

void output_queue::append(std::string_view data) {
  if (data.empty())
    return;
  // Coalesce with a trailing buffer that has not started to go out.
  if (!empty() && items_.back().file_fd < 0 && items_.back().pos == 0
      && items_.back().data.size() < 16384) {
    items_.back().data.append(data);
  } else {
    item it;
    it.data.assign(data);
    items_.push_back(std::move(it));
  }
  pending_ += data.size();
  buffered_ += data.size();
}

void output_queue::append_file(int file_fd, uint64_t offset, uint64_t length) {
  if (length == 0) {
    ::close(file_fd);
    return;
  }
  item it;
  it.file_fd = file_fd;
  it.offset = offset;
  it.remaining = length;
  items_.push_back(std::move(it));
  pending_ += length;
}

void output_queue::clear() noexcept {
  for (auto i = head_; i < items_.size(); ++i)
    if (items_[i].file_fd >= 0)
      ::close(items_[i].file_fd);
  items_.clear();
  items_.shrink_to_fit();
  head_ = 0;
  pending_ = 0;
  buffered_ = 0;
}

void output_queue::compact() noexcept {
  if (head_ < 64 || head_ * 2 < items_.size())
    return;
  items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
  head_ = 0;
}

io_result output_queue::flush(transport& out, socket_stats& stats) {
  while (!empty()) {
    auto& front = items_[head_];
    if (front.file_fd >= 0) {
      auto res = out.sendfile(front.file_fd, front.offset,
                              static_cast<size_t>(std::min(front.remaining, sendfile_chunk)));
      if (res.bytes > 0) {
        stats.count_send(res.bytes);
        front.offset += res.bytes;
        front.remaining -= res.bytes;
        pending_ -= res.bytes;
      }
      if (res.status != io_status::done)
        return res;
      if (front.remaining == 0) {
        ::close(front.file_fd);
        front.file_fd = -1;
        ++head_;
      } else if (res.bytes == 0) {
        // The file ended before the promised length: drop the rest.
        pending_ -= front.remaining;
        ::close(front.file_fd);
        front.file_fd = -1;
        ++head_;
      }
      continue;
    }
    // Gather consecutive buffers into one write.
    iovec iov[max_iov];
    size_t count = 0;
    for (auto i = head_; i < items_.size() && count < max_iov && items_[i].file_fd < 0; ++i) {
      iov[count].iov_base = items_[i].data.data() + items_[i].pos;
      iov[count].iov_len = items_[i].data.size() - items_[i].pos;
      ++count;
    }
    auto res = out.write(iov, count);
    auto written = res.bytes;
    if (written > 0) {
      stats.count_send(written);
      pending_ -= written;
      buffered_ -= written;
    }
    while (written > 0) {
      auto& it = items_[head_];
      auto left = it.data.size() - it.pos;
      if (written >= left) {
        written -= left;
        std::string{}.swap(it.data); // sent: its memory goes now
        ++head_;
      } else {
        it.pos += written;
        written = 0;
      }
    }
    compact();
    if (res.status != io_status::done)
      return res;
    if (res.bytes == 0)
      return {0, io_status::want_write, {}};
  }
  items_.clear();
  head_ = 0;
  return {};
}

} // namespace atl
