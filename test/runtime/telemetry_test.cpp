// Tests of the telemetry bus and spans.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <thread>

#include "atoll/runtime/span.hpp"
#include "atoll/runtime/telemetry.hpp"

using namespace atl::telemetry;

namespace {

struct recorder {
  std::vector<event> events;

  handler fn() {
    return [this](const event& ev) { events.push_back(ev); };
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (auto& ev : events)
      out.push_back(to_string(ev.name));
    return out;
  }
};

const auto conn_prefix = std::make_shared<const event_name>(event_name{"atoll", "connection"});

} // namespace

BOOST_AUTO_TEST_SUITE(telemetry)

BOOST_AUTO_TEST_CASE(nobody_listening_means_disabled) {
  bus b;
  BOOST_CHECK(!b.enabled());
  BOOST_CHECK(!b.enabled({"atoll", "connection", "start"}));
  b.emit({"atoll", "connection", "start"}, {}, {}); // no-op
  BOOST_CHECK_EQUAL(b.size(), 0u);
}

BOOST_AUTO_TEST_CASE(subscribers_receive_events_matching_their_prefix) {
  bus b;
  recorder all, conns, acceptor;
  b.attach({}, all.fn());
  b.attach({"atoll", "connection"}, conns.fn());
  b.attach({"atoll", "acceptor"}, acceptor.fn());
  BOOST_CHECK(b.enabled({"atoll", "listener", "start"}));
  b.emit({"atoll", "connection", "start"}, {{"monotonic_time", int64_t{5}}},
         {{"remote_address", std::string{"127.0.0.1"}}});
  b.emit({"atoll", "listener", "start"}, {}, {});
  BOOST_CHECK((all.names()
               == std::vector<std::string>{"atoll.connection.start", "atoll.listener.start"}));
  BOOST_CHECK((conns.names() == std::vector<std::string>{"atoll.connection.start"}));
  BOOST_CHECK(acceptor.events.empty());
  auto& ev = conns.events.front();
  BOOST_CHECK_EQUAL(ev.measurements.get_or<int64_t>("monotonic_time", 0), 5);
  BOOST_CHECK_EQUAL(ev.metadata.get_or<std::string>("remote_address", ""), "127.0.0.1");
  BOOST_CHECK(!ev.metadata.contains("missing"));
}

BOOST_AUTO_TEST_CASE(detached_subscribers_receive_nothing) {
  bus b;
  recorder r;
  auto id = b.attach({"atoll"}, r.fn());
  b.emit({"atoll", "x"}, {}, {});
  BOOST_CHECK(b.detach(id));
  BOOST_CHECK(!b.detach(id));
  BOOST_CHECK(!b.enabled());
  b.emit({"atoll", "x"}, {}, {});
  BOOST_CHECK_EQUAL(r.events.size(), 1u);
}

BOOST_AUTO_TEST_CASE(a_throwing_subscriber_does_not_stop_the_others) {
  bus b;
  recorder r;
  b.attach({}, [](const event&) { throw std::runtime_error("bad subscriber"); });
  b.attach({}, r.fn());
  BOOST_CHECK_NO_THROW(b.emit({"atoll", "x"}, {}, {}));
  BOOST_CHECK_EQUAL(r.events.size(), 1u);
}

BOOST_AUTO_TEST_CASE(spans_emit_start_events_and_one_stop_with_duration) {
  auto b = std::make_shared<bus>();
  recorder r;
  b->attach({}, r.fn());
  const event_name acceptor_prefix{"atoll", "acceptor"};
  auto parent = span::start(b.get(), &acceptor_prefix, {}, {});
  auto s = span::start(b.get(), conn_prefix.get(), {}, {{"remote_port", uint64_t{4242}}},
                       parent.context(), monotonic_time());
  BOOST_CHECK(s.active());
  BOOST_CHECK_NE(s.context(), parent.context());
  s.emit("recv", {{"data", uint64_t{10}}});
  s.stop({{"recv_oct", uint64_t{10}}}, {{"error", std::string{"timeout"}}});
  s.stop(); // once only
  BOOST_CHECK(!s.active());
  BOOST_REQUIRE_EQUAL(r.events.size(), 4u);
  BOOST_CHECK((r.names()
               == std::vector<std::string>{"atoll.acceptor.start", "atoll.connection.start",
                                           "atoll.connection.recv", "atoll.connection.stop"}));
  auto& start = r.events[1];
  BOOST_CHECK_EQUAL(start.measurements.get_or<int64_t>("monotonic_time", 0), s.start_time());
  BOOST_CHECK_EQUAL(start.metadata.get_or<uint64_t>("telemetry_span_context", 0), s.context());
  BOOST_CHECK_EQUAL(start.metadata.get_or<uint64_t>("parent_telemetry_span_context", 0),
                    parent.context());
  BOOST_CHECK_EQUAL(r.events[2].metadata.get_or<uint64_t>("telemetry_span_context", 0),
                    s.context());
  auto& stop = r.events[3];
  BOOST_CHECK_GE(stop.measurements.get_or<int64_t>("duration", -1), 0);
  BOOST_CHECK_EQUAL(stop.measurements.get_or<uint64_t>("recv_oct", 0), 10u);
  // Stop metadata = start metadata + stop metadata.
  BOOST_CHECK_EQUAL(stop.metadata.get_or<uint64_t>("remote_port", 0), 4242u);
  BOOST_CHECK_EQUAL(stop.metadata.get_or<std::string>("error", ""), "timeout");
  BOOST_CHECK_EQUAL(stop.metadata.get_or<uint64_t>("parent_telemetry_span_context", 0),
                    parent.context());
}

BOOST_AUTO_TEST_CASE(a_default_span_is_inert) {
  span s;
  BOOST_CHECK(!s.active());
  BOOST_CHECK(!s.enabled());
  s.emit("x");
  s.stop();
  BOOST_CHECK_EQUAL(s.context(), 0u);
}

BOOST_AUTO_TEST_CASE(attach_and_detach_while_emitting_from_other_threads) {
  auto b = std::make_shared<bus>();
  std::atomic<bool> running{true};
  std::atomic<uint64_t> delivered{0};
  std::vector<std::thread> emitters;
  for (int i = 0; i < 2; ++i)
    emitters.emplace_back([&] {
      while (running.load())
        b->emit({"atoll", "connection", "recv"}, {{"data", uint64_t{1}}}, {});
    });
  for (int i = 0; i < 200; ++i) {
    auto id = b->attach({"atoll", "connection"}, [&](const event&) { ++delivered; });
    std::this_thread::yield();
    BOOST_CHECK(b->detach(id));
  }
  running = false;
  for (auto& t : emitters)
    t.join();
  BOOST_CHECK(!b->enabled());
  BOOST_TEST_MESSAGE("events delivered while attached: " << delivered.load());
}

BOOST_AUTO_TEST_CASE(detach_waits_for_a_call_in_progress_and_allows_self_detach) {
  bus b;
  std::atomic<bool> entered{false};
  std::atomic<bool> finished{false};
  auto id = b.attach({}, [&](const event&) {
    entered = true;
    std::this_thread::sleep_for(std::chrono::milliseconds{200}); // a slow subscriber
    finished = true;
  });
  std::thread emitter{[&] { b.emit({"atoll", "x"}, {}, {}); }};
  while (!entered)
    std::this_thread::yield();
  BOOST_CHECK(b.detach(id));
  BOOST_CHECK(finished.load()); // detach returned only after the call ended
  emitter.join();
  // A handler may detach itself without deadlocking.
  subscription self_id = 0;
  int calls = 0;
  self_id = b.attach({}, [&](const event&) {
    ++calls;
    b.detach(self_id);
  });
  b.emit({"atoll", "y"}, {}, {});
  b.emit({"atoll", "y"}, {}, {});
  BOOST_CHECK_EQUAL(calls, 1);
}

BOOST_AUTO_TEST_CASE(values_render_as_text) {
  BOOST_CHECK_EQUAL(to_string(value{}), "nil");
  BOOST_CHECK_EQUAL(to_string(value{true}), "true");
  BOOST_CHECK_EQUAL(to_string(value{int64_t{-3}}), "-3");
  BOOST_CHECK_EQUAL(to_string(value{uint64_t{7}}), "7");
  BOOST_CHECK_EQUAL(to_string(value{std::string{"x"}}), "x");
  BOOST_CHECK_EQUAL(to_string(event_name{"atoll", "acceptor", "spawn_error"}),
                    "atoll.acceptor.spawn_error");
}

BOOST_AUTO_TEST_SUITE_END()

#include "atoll/runtime/error.hpp"
#include "atoll/runtime/logger.hpp"

namespace {

/// Captures log lines for the duration of a test.
struct captured_log {
  std::mutex mtx;
  std::vector<std::pair<atl::log_level, std::string>> lines;

  captured_log() {
    atl::set_log_sink([this](atl::log_level level, const std::string& line) {
      std::lock_guard<std::mutex> guard{mtx};
      lines.emplace_back(level, line);
    });
  }

  ~captured_log() {
    atl::set_log_sink({});
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(telemetry)

BOOST_AUTO_TEST_CASE(the_logger_maps_events_to_cumulative_levels) {
  using atl::log_level;
  BOOST_CHECK(atl::level_of({"atoll", "acceptor", "spawn_error"}) == log_level::error);
  BOOST_CHECK(atl::level_of({"atoll", "connection", "send_error"}) == log_level::error);
  BOOST_CHECK(atl::level_of({"atoll", "listener", "start"}) == log_level::info);
  BOOST_CHECK(atl::level_of({"atoll", "connection", "stop"}) == log_level::debug);
  BOOST_CHECK(atl::level_of({"atoll", "connection", "recv"}) == log_level::trace);
  captured_log captured;
  bus b;
  BOOST_REQUIRE(!atl::attach_logger(b, log_level::info)); // error + info
  BOOST_CHECK(atl::attach_logger(b, log_level::info) == atl::errc::already_present);
  BOOST_CHECK(atl::attach_logger(b, log_level::error) == atl::errc::already_present);
  b.emit({"atoll", "acceptor", "emfile"}, {{"error", std::string{"emfile"}}}, {});
  b.emit({"atoll", "listener", "start"}, {}, {{"local_port", uint64_t{4000}}});
  b.emit({"atoll", "connection", "start"}, {}, {});
  BOOST_REQUIRE_EQUAL(captured.lines.size(), 2u);
  BOOST_CHECK(captured.lines[0].first == log_level::error);
  BOOST_CHECK_EQUAL(captured.lines[0].second, "atoll.acceptor.emfile error=emfile");
  BOOST_CHECK_EQUAL(captured.lines[1].second, "atoll.listener.start local_port=4000");
  // Detaching info leaves error attached.
  BOOST_REQUIRE(!atl::detach_logger(b, log_level::info));
  BOOST_CHECK(atl::detach_logger(b, log_level::info) == atl::errc::not_found);
  b.emit({"atoll", "listener", "stop"}, {}, {});
  b.emit({"atoll", "acceptor", "einval"}, {}, {});
  BOOST_REQUIRE_EQUAL(captured.lines.size(), 3u);
  BOOST_CHECK_EQUAL(captured.lines[2].second, "atoll.acceptor.einval");
  // Trace attaches everything; detaching error detaches all.
  BOOST_REQUIRE(!atl::attach_logger(b, log_level::trace));
  b.emit({"atoll", "connection", "recv"}, {{"data", std::string{"hi"}}}, {});
  BOOST_REQUIRE_EQUAL(captured.lines.size(), 4u);
  BOOST_REQUIRE(!atl::detach_logger(b, log_level::error));
  BOOST_CHECK(!b.enabled());
}

BOOST_AUTO_TEST_SUITE_END()
