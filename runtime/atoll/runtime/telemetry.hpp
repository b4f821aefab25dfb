// The telemetry event bus: named events with measurements and metadata,
// delivered synchronously to subscribers attached by event-name prefix.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace atl::telemetry {

/// A measurement or metadata value.
using value = std::variant<std::monostate, bool, int64_t, uint64_t, double, std::string>;

/// Renders a value as text (strings verbatim, numbers in decimal).
std::string to_string(const value& x);

/// Renders bytes as lowercase hex digits, two per byte (how log lines and
/// JSON telemetry show a `data` field).
std::string to_hex(const std::string& bytes);

/// An ordered list of key/value pairs: an event's measurements or metadata.
class fields {
public:
  fields() = default;

  /// Builds fields from `{{"key", value}, ...}`.
  fields(std::initializer_list<std::pair<std::string, value>> init) : items_(init) {
  }

  /// Sets `key` (replacing an existing value).
  fields& set(std::string key, value val);

  /// Returns the value of `key`, or nullptr.
  const value* find(const std::string& key) const noexcept;

  /// True if `key` is present.
  bool contains(const std::string& key) const noexcept {
    return find(key) != nullptr;
  }

  /// Returns the value of `key` as T, or `fallback` if absent or of another type.
  template <class T>
  T get_or(const std::string& key, T fallback) const {
    if (auto ptr = find(key))
      if (auto typed = std::get_if<T>(ptr))
        return *typed;
    return fallback;
  }

  /// Appends all pairs of `other` (replacing duplicates).
  void merge(const fields& other);

  /// The pairs in insertion order.
  const std::vector<std::pair<std::string, value>>& items() const noexcept {
    return items_;
  }

  /// Number of pairs.
  size_t size() const noexcept {
    return items_.size();
  }

private:
  std::vector<std::pair<std::string, value>> items_;
};

/// An event name such as `{"atoll", "connection", "start"}`.
using event_name = std::vector<std::string>;

/// Joins an event name with dots: "atoll.connection.start".
std::string to_string(const event_name& name);

/// One emitted event.
struct event {
  /// Its name.
  event_name name;
  /// Numbers describing it (e.g. monotonic_time, duration, byte counters).
  fields measurements;
  /// Context (e.g. telemetry_span_context, remote_address, error).
  fields metadata;
};

/// A subscriber callback. It runs synchronously on the emitting thread (often
/// an actor's scheduler thread): keep it short and never block in it.
using handler = std::function<void(const event&)>;

/// Identifies an attached subscriber.
using subscription = uint64_t;

/// What a subscriber needs of the events it attached to.
enum class delivery : uint8_t {
  /// Every event of its prefix (the default).
  every_event,
  /// A summary will do: an emitter that documents a summary event may,
  /// when every subscriber of a frequent event accepts summaries, emit that
  /// summary (one per batch of work) instead of the frequent events. Such a
  /// subscriber also attaches to the summary event. For subscribers that
  /// count, such as metrics.
  summaries,
};

/// The event bus. Emitting costs one relaxed atomic load when nobody listens;
/// callers check `enabled()` before they build an event's fields. Attaching
/// and detaching are safe at any time from any thread, also while events are
/// emitted: `detach` waits until no other thread runs the handler any more,
/// so a subscriber may be destroyed once `detach` returns (a handler may
/// detach itself from inside its own call).
class bus {
public:
  bus() = default;
  bus(const bus&) = delete;
  bus& operator=(const bus&) = delete;

  /// Runs the `on_destroy` callbacks, in the order they were added.
  /// Destroy a bus only once nothing emits to it any more.
  ~bus();

  /// Runs `fn` when the bus is destroyed: for those that keep state about a
  /// bus outside it (the logger's registry forgets the bus, so a new bus at
  /// the same address starts with no logger). `fn` must not throw.
  /// Thread-safe.
  void on_destroy(std::function<void()> fn);

  /// Attaches `fn` to every event whose name starts with `prefix` (an empty
  /// prefix matches all events). Returns the subscription's id. With
  /// `delivery::summaries`, emitters that offer a summary may send it in
  /// place of some of those events (see `delivery`).
  subscription attach(event_name prefix, handler fn, delivery mode = delivery::every_event);

  /// Detaches a subscription. Returns false if it was not attached.
  bool detach(subscription id);

  /// True if any subscriber is attached (one atomic load). Always false
  /// when Atoll is built with `-DATOLL_TELEMETRY=OFF` (ATOLL_NO_TELEMETRY):
  /// emitters then build and emit nothing.
  bool enabled() const noexcept {
#ifdef ATOLL_NO_TELEMETRY
    return false;
#else
    return active_.load(std::memory_order_relaxed) != 0;
#endif
  }

  /// True if a subscriber's prefix matches `name`.
  bool enabled(const event_name& name) const;

  /// True if a subscriber that wants every event (`delivery::every_event`)
  /// has a prefix matching `name`.
  bool detailed(const event_name& name) const;

  /// Delivers an event to every matching subscriber, in attach order.
  /// Exceptions thrown by subscribers are caught and dropped.
  void emit(event_name name, fields measurements, fields metadata) const;

  /// Number of attached subscribers.
  size_t size() const noexcept {
    return active_.load(std::memory_order_relaxed);
  }

  /// Changes whenever a subscriber is attached or detached (one atomic load;
  /// see `interest`).
  uint64_t generation() const noexcept {
    return generation_.load(std::memory_order_acquire);
  }

private:
  /// A subscriber's handler and who is running it.
  struct slot {
    explicit slot(handler f) : fn(std::move(f)) {
    }
    handler fn;
    std::atomic<bool> detached{false};
    std::atomic<int> running{0};
  };

  struct entry {
    subscription id;
    event_name prefix;
    std::shared_ptr<slot> sub;
    delivery mode;
  };
  using table = std::vector<entry>;

  std::shared_ptr<const table> snapshot() const;

  mutable std::mutex mtx_;
  std::vector<std::function<void()>> on_destroy_;
  std::shared_ptr<const table> table_ = std::make_shared<const table>();
  std::atomic<size_t> active_{0};
  std::atomic<uint64_t> generation_{0};
  subscription next_id_ = 1;
};

/// Whether events of one name have a subscriber, cached until the bus's
/// subscriptions change: two atomic loads per check when the bus has
/// subscribers, one when it has none. For frequent events that are costly
/// to build (those carrying data): an emitter builds them only for
/// subscribers of their name, not whenever anybody listens to anything.
/// Thread-safe; one instance serves every emitter of that name.
class interest {
public:
  /// Watches `name` on `events` (which must outlive it).
  interest(const bus* events, event_name name) : events_(events), name_(std::move(name)) {
  }

  interest(const interest&) = delete;
  interest& operator=(const interest&) = delete;

  /// True if a subscriber's prefix matches the name.
  bool enabled() const noexcept;

  /// True if a subscriber that wants every event of the name
  /// (`delivery::every_event`) matches it. When `enabled()` is true and
  /// this is false, an emitter that offers a summary may emit it instead.
  bool detailed() const noexcept;

  /// The event name.
  const event_name& name() const noexcept {
    return name_;
  }

private:
  const bus* events_;
  event_name name_;
  /// The cached state: (generation + 1) << 2 | detailed << 1 | enabled.
  uint64_t state() const noexcept;

  // See state(); 0: not computed yet.
  mutable std::atomic<uint64_t> cache_{0};
};

/// The process-wide default bus, used by servers unless their options name
/// another. Never null.
const std::shared_ptr<bus>& default_bus();

/// Nanoseconds on the monotonic clock (telemetry's `monotonic_time`).
int64_t monotonic_time() noexcept;

/// A fresh process-unique span context id (never 0).
uint64_t make_span_context() noexcept;

} // namespace atl::telemetry
