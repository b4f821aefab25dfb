#include "atoll/runtime/telemetry.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include <fmt/format.h>

namespace atl::telemetry {

std::string to_string(const value& x) {
  struct visitor {
    std::string operator()(std::monostate) const {
      return "nil";
    }
    std::string operator()(bool v) const {
      return v ? "true" : "false";
    }
    std::string operator()(int64_t v) const {
      return std::to_string(v);
    }
    std::string operator()(uint64_t v) const {
      return std::to_string(v);
    }
    std::string operator()(double v) const {
      return fmt::format("{}", v);
    }
    std::string operator()(const std::string& v) const {
      return v;
    }
  };
  return std::visit(visitor{}, x);
}

std::string to_hex(const std::string& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 0x0f];
  }
  return out;
}

std::string to_string(const event_name& name) {
  std::string out;
  for (const auto& part : name) {
    if (!out.empty())
      out += '.';
    out += part;
  }
  return out;
}

fields& fields::set(std::string key, value val) {
  for (auto& kv : items_) {
    if (kv.first == key) {
      kv.second = std::move(val);
      return *this;
    }
  }
  items_.emplace_back(std::move(key), std::move(val));
  return *this;
}

const value* fields::find(const std::string& key) const noexcept {
  for (const auto& kv : items_)
    if (kv.first == key)
      return &kv.second;
  return nullptr;
}

void fields::merge(const fields& other) {
  for (const auto& kv : other.items_)
    set(kv.first, kv.second);
}

namespace {

bool has_prefix(const event_name& name, const event_name& prefix) {
  return prefix.size() <= name.size() && std::equal(prefix.begin(), prefix.end(), name.begin());
}

} // namespace

std::shared_ptr<const bus::table> bus::snapshot() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return table_;
}

bus::~bus() {
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    callbacks.swap(on_destroy_);
  }
  for (auto& fn : callbacks)
    fn();
}

void bus::on_destroy(std::function<void()> fn) {
  std::lock_guard<std::mutex> guard{mtx_};
  on_destroy_.push_back(std::move(fn));
}

subscription bus::attach(event_name prefix, handler fn, delivery mode) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto copy = std::make_shared<table>(*table_);
  auto id = next_id_++;
  copy->push_back(entry{id, std::move(prefix), std::make_shared<slot>(std::move(fn)), mode});
  table_ = std::move(copy);
  active_.store(table_->size(), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  return id;
}

namespace {

/// The slot whose handler runs on this thread right now (for self-detach).
thread_local const void* running_here = nullptr;

} // namespace

bool bus::detach(subscription id) {
  std::shared_ptr<slot> gone;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto copy = std::make_shared<table>(*table_);
    auto i = std::find_if(copy->begin(), copy->end(), [id](const entry& e) { return e.id == id; });
    if (i == copy->end())
      return false;
    gone = i->sub;
    copy->erase(i);
    table_ = std::move(copy);
    active_.store(table_->size(), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  // Wait for calls in progress on other threads (emitters announce
  // themselves before they check the flag, so none slips through).
  gone->detached.store(true);
  auto own = running_here == gone.get() ? 1 : 0;
  while (gone->running.load() > own)
    std::this_thread::yield();
  return true;
}

bool bus::enabled(const event_name& name) const {
  if (!enabled())
    return false;
  auto tbl = snapshot();
  return std::any_of(tbl->begin(), tbl->end(),
                     [&](const entry& e) { return has_prefix(name, e.prefix); });
}

bool bus::detailed(const event_name& name) const {
  if (!enabled())
    return false;
  auto tbl = snapshot();
  return std::any_of(tbl->begin(), tbl->end(), [&](const entry& e) {
    return e.mode == delivery::every_event && has_prefix(name, e.prefix);
  });
}

uint64_t interest::state() const noexcept {
  auto tag = (events_->generation() + 1) << 2;
  auto cached = cache_.load(std::memory_order_relaxed);
  if ((cached & ~uint64_t{3}) == tag)
    return cached;
  // Computed for the generation read before: if subscriptions change
  // meanwhile, the next check sees a newer generation and computes again.
  uint64_t bits = 3; // out of memory copying the table: build the event
  try {
    bits = (events_->enabled(name_) ? 1u : 0u) | (events_->detailed(name_) ? 2u : 0u);
  } catch (...) {
    // Keep both bits set.
  }
  cache_.store(tag | bits, std::memory_order_relaxed);
  return tag | bits;
}

bool interest::enabled() const noexcept {
  if (events_ == nullptr || !events_->enabled())
    return false;
  return (state() & 1) != 0;
}

bool interest::detailed() const noexcept {
  if (events_ == nullptr || !events_->enabled())
    return false;
  return (state() & 2) != 0;
}

void bus::emit(event_name name, fields measurements, fields metadata) const {
  if (!enabled())
    return;
  auto tbl = snapshot();
  const event ev{std::move(name), std::move(measurements), std::move(metadata)};
  for (const auto& e : *tbl) {
    if (!has_prefix(ev.name, e.prefix))
      continue;
    auto& sub = *e.sub;
    sub.running.fetch_add(1);
    if (!sub.detached.load()) {
      auto outer = running_here;
      running_here = &sub;
      try {
        sub.fn(ev);
      } catch (...) {
        // A faulty subscriber must not break the emitter (often an actor).
      }
      running_here = outer;
    }
    sub.running.fetch_sub(1);
  }
}

const std::shared_ptr<bus>& default_bus() {
  static const std::shared_ptr<bus> instance = std::make_shared<bus>();
  return instance;
}

int64_t monotonic_time() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

uint64_t make_span_context() noexcept {
  static std::atomic<uint64_t> next{0};
  return ++next;
}

} // namespace atl::telemetry
