// Tests of the telemetry bus and spans.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/runtime/json_writer.hpp"
#include "atoll/runtime/logger.hpp"
#include "atoll/runtime/span.hpp"
#include "atoll/runtime/telemetry.hpp"
#include "support/allocation_count.hpp"
#include "support/fd_leak_check.hpp"

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

BOOST_FIXTURE_TEST_SUITE(telemetry, atl::test::fd_leak_check)

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

BOOST_AUTO_TEST_CASE(with_nobody_subscribed_a_span_and_its_events_allocate_nothing) {
  bus b;
  interest data{&b, join(*conn_prefix, "recv")};
  auto connection = [&] {
    auto s = span::start(&b, conn_prefix.get(), {}, {}, 0);
    if (s.enabled())
      s.emit("ready", {{"monotonic_time", monotonic_time()}});
    if (s.enabled(data))
      s.emit(data, {{"data", std::string(100, 'x')}});
    s.stop();
  };
  BOOST_CHECK_EQUAL(atl::test::allocations_of(connection), 0u);
  // The counter counts: a subscriber makes the same connection allocate.
  recorder r;
  auto sub = b.attach({"atoll"}, r.fn());
  BOOST_CHECK_GT(atl::test::allocations_of(connection), 0u);
  BOOST_CHECK_EQUAL(r.names().size(), 4u);
  b.detach(sub);
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

namespace {

/// Captures log records for the duration of a test.
struct captured_log {
  std::mutex mtx;
  std::vector<std::pair<atl::log_level, std::string>> lines;
  std::vector<const event*> events;

  captured_log() {
    atl::set_log_sink([this](const atl::log_record& rec) {
      std::lock_guard<std::mutex> guard{mtx};
      lines.emplace_back(rec.level, std::string{rec.text});
      events.push_back(rec.event);
    });
  }

  ~captured_log() {
    atl::set_log_sink({});
  }

  std::vector<std::string> texts() {
    std::lock_guard<std::mutex> guard{mtx};
    std::vector<std::string> out;
    for (auto& l : lines)
      out.push_back(l.second);
    return out;
  }
};

/// A table for events of a layer that only these tests emit.
void register_test_levels() {
  using atl::log_level;
  atl::register_log_levels({{{"t", "acc", "oops"}, log_level::error},
                            {{"t", "acc", "start"}, log_level::debug},
                            {{"t", "lis", "start"}, log_level::info},
                            {{"t", "lis", "stop"}, log_level::info},
                            {{"t", "conn", "start"}, log_level::debug},
                            {{"t", "conn", "stop"}, log_level::debug},
                            {{"t", "conn", "recv"}, log_level::trace}});
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(telemetry, atl::test::fd_leak_check)

BOOST_AUTO_TEST_CASE(an_interest_follows_the_subscriptions_of_its_event_name) {
  bus b;
  interest recv{&b, {"atoll", "connection", "recv"}};
  BOOST_CHECK(!recv.enabled());
  auto stops = b.attach({"atoll", "connection", "stop"}, [](const event&) {});
  BOOST_CHECK(b.enabled());
  BOOST_CHECK(!recv.enabled()); // somebody listens, not to recv
  BOOST_CHECK(!recv.enabled()); // (cached)
  auto all_conn = b.attach({"atoll", "connection"}, [](const event&) {});
  BOOST_CHECK(recv.enabled());
  BOOST_CHECK(recv.enabled());
  BOOST_REQUIRE(b.detach(all_conn));
  BOOST_CHECK(!recv.enabled());
  auto everything = b.attach({}, [](const event&) {});
  BOOST_CHECK(recv.enabled());
  BOOST_REQUIRE(b.detach(everything));
  BOOST_REQUIRE(b.detach(stops));
  BOOST_CHECK(!recv.enabled());
  // A span emits through an interest only to its subscribers.
  recorder rec;
  auto id = b.attach({"atoll", "connection", "recv"}, rec.fn());
  auto sp = span::start(&b, conn_prefix.get(), {}, {});
  sp.emit(recv, {{"data", std::string{"x"}}});
  interest send{&b, {"atoll", "connection", "send"}};
  BOOST_CHECK(!sp.enabled(send));
  sp.emit(send, {{"data", std::string{"y"}}});
  BOOST_REQUIRE_EQUAL(rec.events.size(), 1u);
  BOOST_CHECK_EQUAL(to_string(rec.events[0].name), "atoll.connection.recv");
  BOOST_CHECK_EQUAL(rec.events[0].metadata.get_or<uint64_t>("telemetry_span_context", 0),
                    sp.context());
  BOOST_REQUIRE(b.detach(id));
}

BOOST_AUTO_TEST_CASE(an_interest_is_detailed_only_for_subscribers_that_want_every_event) {
  bus b;
  interest start{&b, {"atoll", "udp", "connection", "start"}};
  recorder counted;
  auto summaries = b.attach({"atoll", "udp", "connection"}, counted.fn(), delivery::summaries);
  BOOST_CHECK(start.enabled());
  BOOST_CHECK(!start.detailed()); // a summary will do
  BOOST_CHECK(!b.detailed({"atoll", "udp", "connection", "start"}));
  auto every = b.attach({"atoll", "udp"}, [](const event&) {});
  BOOST_CHECK(start.enabled());
  BOOST_CHECK(start.detailed());
  BOOST_REQUIRE(b.detach(every));
  BOOST_CHECK(!start.detailed());
  // Whatever is emitted reaches a summaries subscriber as any other.
  b.emit({"atoll", "udp", "connection", "start"}, {}, {});
  BOOST_CHECK_EQUAL(counted.events.size(), 1u);
  BOOST_REQUIRE(b.detach(summaries));
  BOOST_CHECK(!start.enabled());
  BOOST_CHECK(!start.detailed());
}

BOOST_AUTO_TEST_CASE(the_logger_reports_only_registered_events_at_their_level) {
  using atl::log_level;
  register_test_levels();
  BOOST_CHECK(atl::level_of({"t", "acc", "oops"}) == log_level::error);
  BOOST_CHECK(atl::level_of({"t", "conn", "recv"}) == log_level::trace);
  BOOST_CHECK(!atl::level_of({"t", "conn", "unknown"}));
  BOOST_CHECK(!atl::level_of({"t", "conn"}));
  captured_log captured;
  bus b;
  BOOST_REQUIRE(!atl::attach_logger(b, log_level::trace));
  b.emit({"t", "conn", "unknown"}, {}, {});
  b.emit({"t", "conn", "recv"}, {{"data", std::string{"hi\n"}}},
         {{"opts", std::string{"a=1 b=\"\\"}}});
  BOOST_CHECK(captured.texts()
              == std::vector<std::string>{R"(t.conn.recv data=68690a opts="a=1 b=\"\\")"});
  BOOST_REQUIRE_EQUAL(captured.events.size(), 1u);
  BOOST_CHECK(captured.events[0] != nullptr);
  BOOST_REQUIRE(!atl::detach_logger(b, log_level::error));
  BOOST_CHECK(!b.enabled());
}

BOOST_AUTO_TEST_CASE(logger_levels_attach_upward_and_detach_downward) {
  using atl::log_level;
  using levels = std::vector<log_level>;
  register_test_levels();
  captured_log captured;
  bus b;
  auto emit_all = [&] {
    b.emit({"t", "acc", "oops"}, {{"error", std::string{"emfile"}}}, {});
    b.emit({"t", "lis", "start"}, {}, {{"local_port", uint64_t{4000}}});
    b.emit({"t", "conn", "start"}, {}, {});
    b.emit({"t", "conn", "recv"}, {}, {});
  };
  BOOST_REQUIRE(!atl::attach_logger(b, log_level::info)); // error + info
  BOOST_CHECK(atl::attached_log_levels(b) == (levels{log_level::error, log_level::info}));
  BOOST_CHECK(atl::attach_logger(b, log_level::info) == atl::errc::already_present);
  BOOST_CHECK(atl::attach_logger(b, log_level::error) == atl::errc::already_present);
  emit_all();
  BOOST_CHECK(captured.texts()
              == (std::vector<std::string>{"t.acc.oops error=emfile", "t.lis.start local_port=4000"}));
  BOOST_CHECK(captured.lines[0].first == log_level::error);
  BOOST_CHECK(captured.lines[1].first == log_level::info);
  // Trace adds debug and trace; error and info stay attached once.
  BOOST_REQUIRE(!atl::attach_logger(b, log_level::trace));
  BOOST_CHECK(atl::attached_log_levels(b)
              == (levels{log_level::error, log_level::info, log_level::debug, log_level::trace}));
  captured.lines.clear();
  emit_all();
  BOOST_CHECK_EQUAL(captured.lines.size(), 4u);
  // Detaching debug detaches trace too.
  BOOST_REQUIRE(!atl::detach_logger(b, log_level::debug));
  BOOST_CHECK(atl::attached_log_levels(b) == (levels{log_level::error, log_level::info}));
  BOOST_CHECK(atl::detach_logger(b, log_level::trace) == atl::errc::not_found);
  captured.lines.clear();
  emit_all();
  BOOST_CHECK_EQUAL(captured.lines.size(), 2u);
  // Detaching info leaves error.
  BOOST_REQUIRE(!atl::detach_logger(b, log_level::info));
  captured.lines.clear();
  emit_all();
  BOOST_CHECK(captured.texts() == std::vector<std::string>{"t.acc.oops error=emfile"});
  // Detaching error detaches the logger from the bus.
  BOOST_REQUIRE(!atl::detach_logger(b, log_level::error));
  BOOST_CHECK(atl::detach_logger(b, log_level::error) == atl::errc::not_found);
  BOOST_CHECK(atl::attached_log_levels(b).empty());
  BOOST_CHECK(!b.enabled());
}

BOOST_AUTO_TEST_CASE(a_logger_goes_with_its_bus) {
  using atl::log_level;
  register_test_levels();
  captured_log captured;
  std::optional<bus> b;
  b.emplace();
  BOOST_REQUIRE(!atl::attach_logger(*b, log_level::info));
  b.reset(); // without detaching
  b.emplace(); // at the same address
  BOOST_CHECK(atl::attached_log_levels(*b).empty());
  BOOST_CHECK(!b->enabled());
  BOOST_CHECK(atl::detach_logger(*b, log_level::info) == atl::errc::not_found);
  BOOST_REQUIRE(!atl::attach_logger(*b, log_level::info)); // not "already attached"
  // New levels resubscribe every attached logger: only live buses.
  atl::register_log_levels({{{"t", "lis", "ready"}, log_level::info}});
  b->emit({"t", "lis", "ready"}, {}, {});
  BOOST_CHECK(captured.texts() == std::vector<std::string>{"t.lis.ready"});
  BOOST_REQUIRE(!atl::detach_logger(*b, log_level::error));
  BOOST_CHECK(!b->enabled());
}

BOOST_AUTO_TEST_CASE(the_logger_subscribes_only_to_what_it_logs) {
  using atl::log_level;
  register_test_levels();
  captured_log captured;
  bus b;
  interest recv{&b, {"t", "conn", "recv"}};
  interest start{&b, {"t", "conn", "start"}};
  BOOST_REQUIRE(!atl::attach_logger(b, log_level::error));
  // Span starts and stops are followed at every level (for the labels), the
  // trace events only at trace: emitters do not build them for less.
  BOOST_CHECK(start.enabled());
  BOOST_CHECK(!recv.enabled());
  BOOST_REQUIRE(!atl::attach_logger(b, log_level::debug));
  BOOST_CHECK(!recv.enabled());
  BOOST_REQUIRE(!atl::attach_logger(b, log_level::trace));
  BOOST_CHECK(recv.enabled());
  BOOST_REQUIRE(!atl::detach_logger(b, log_level::trace));
  BOOST_CHECK(!recv.enabled());
  // Events registered after the logger was attached are logged too.
  atl::register_log_levels({{{"t", "late", "oops"}, log_level::error}});
  b.emit({"t", "late", "oops"}, {}, {});
  BOOST_CHECK(captured.texts() == std::vector<std::string>{"t.late.oops"});
  BOOST_REQUIRE(!atl::detach_logger(b, log_level::error));
  BOOST_CHECK(!b.enabled());
}

BOOST_AUTO_TEST_CASE(log_lines_name_the_server_and_peer_of_their_span) {
  using atl::log_level;
  register_test_levels();
  captured_log captured;
  bus b;
  BOOST_REQUIRE(!atl::attach_logger(b, log_level::trace));
  b.emit({"t", "lis", "start"}, {},
         {{"local_address", std::string{"::1"}}, {"local_port", uint64_t{80}},
          {"telemetry_span_context", uint64_t{1}}});
  b.emit({"t", "acc", "start"}, {},
         {{"telemetry_span_context", uint64_t{2}}, {"parent_telemetry_span_context", uint64_t{1}}});
  b.emit({"t", "conn", "start"}, {},
         {{"remote_address", std::string{"10.0.0.7"}},
          {"remote_port", uint64_t{5555}},
          {"telemetry_span_context", uint64_t{3}},
          {"parent_telemetry_span_context", uint64_t{2}}});
  b.emit({"t", "conn", "recv"}, {}, {{"telemetry_span_context", uint64_t{3}}});
  b.emit({"t", "conn", "stop"}, {}, {{"telemetry_span_context", uint64_t{3}}});
  b.emit({"t", "conn", "recv"}, {}, {{"telemetry_span_context", uint64_t{3}}});
  auto texts = captured.texts();
  BOOST_REQUIRE_EQUAL(texts.size(), 6u);
  BOOST_CHECK_EQUAL(texts[0], "t.lis.start server=[::1]:80 local_address=::1 local_port=80 "
                              "telemetry_span_context=1");
  BOOST_CHECK_EQUAL(texts[1], "t.acc.start server=[::1]:80 telemetry_span_context=2 "
                              "parent_telemetry_span_context=1");
  BOOST_CHECK_EQUAL(texts[2], "t.conn.start server=[::1]:80 peer=10.0.0.7:5555 "
                              "remote_address=10.0.0.7 remote_port=5555 telemetry_span_context=3 "
                              "parent_telemetry_span_context=2");
  BOOST_CHECK_EQUAL(texts[3], "t.conn.recv server=[::1]:80 peer=10.0.0.7:5555 "
                              "telemetry_span_context=3");
  BOOST_CHECK_EQUAL(texts[4], "t.conn.stop server=[::1]:80 peer=10.0.0.7:5555 "
                              "telemetry_span_context=3");
  // After its stop, the span is forgotten.
  BOOST_CHECK_EQUAL(texts[5], "t.conn.recv telemetry_span_context=3");
  BOOST_REQUIRE(!atl::detach_logger(b, log_level::error));
}

BOOST_AUTO_TEST_CASE(the_default_log_line_has_a_utc_timestamp_and_the_level) {
  using namespace std::chrono;
  // 2026-12-02 13:40:01.000042 UTC
  system_clock::time_point t{seconds{1796218801} + microseconds{42}};
  atl::log_record rec{t, atl::log_level::debug, nullptr, "t.conn.start peer=a:1"};
  BOOST_CHECK_EQUAL(atl::format_log_line(rec),
                    "2026-12-02T13:40:01.000042Z atoll [debug] t.conn.start peer=a:1");
  BOOST_CHECK(atl::parse_log_level("trace") == atl::log_level::trace);
  BOOST_CHECK(!atl::parse_log_level("none"));
  BOOST_CHECK(!atl::parse_log_level("Error"));
}

BOOST_AUTO_TEST_CASE(json_telemetry_keeps_names_numbers_and_hex_data) {
  event ev{{"atoll", "connection", "recv"},
           {{"data", std::string{"\x00\xff\r\n", 4}}, {"duration", int64_t{-5}}},
           {{"telemetry_span_context", uint64_t{18446744073709551615u}},
            {"error", std::string{"bad \xc3 byte"}},
            {"tls", true},
            {"ratio", 0.5},
            {"none", std::monostate{}}}};
  auto line = to_json(ev);
  BOOST_CHECK(line.find('\n') == std::string::npos);
  auto j = nlohmann::json::parse(line);
  BOOST_CHECK(j["event"] == (nlohmann::json{"atoll", "connection", "recv"}));
  BOOST_CHECK_EQUAL(j["measurements"]["data"].get<std::string>(), "00ff0d0a");
  BOOST_CHECK_EQUAL(j["measurements"]["duration"].get<int64_t>(), -5);
  BOOST_CHECK_EQUAL(j["metadata"]["telemetry_span_context"].get<uint64_t>(),
                    18446744073709551615u);
  BOOST_CHECK_EQUAL(j["metadata"]["error"].get<std::string>(), "bad \xef\xbf\xbd byte");
  BOOST_CHECK(j["metadata"]["tls"].get<bool>());
  BOOST_CHECK_EQUAL(j["metadata"]["ratio"].get<double>(), 0.5);
  BOOST_CHECK(j["metadata"]["none"].is_null());
  // Field order is kept.
  BOOST_CHECK_LT(line.find("\"data\""), line.find("\"duration\""));
}

BOOST_AUTO_TEST_CASE(the_json_writer_writes_whole_lines_from_many_threads) {
  auto events = std::make_shared<bus>();
  char* buf = nullptr;
  size_t len = 0;
  auto* out = open_memstream(&buf, &len);
  BOOST_REQUIRE(out != nullptr);
  constexpr int threads = 4;
  constexpr int per_thread = 500;
  {
    json_writer writer{events, out, {"atoll"}};
    std::vector<std::thread> emitters;
    for (int t = 0; t < threads; ++t)
      emitters.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i)
          events->emit({"atoll", "connection", "send"}, {{"data", std::string(100, 'x')}},
                       {{"thread", int64_t{t}}, {"i", int64_t{i}}});
      });
    events->emit({"other", "event"}, {}, {}); // not under the prefix
    for (auto& th : emitters)
      th.join();
    BOOST_CHECK_EQUAL(writer.lines(), uint64_t{threads * per_thread});
  }
  BOOST_CHECK(!events->enabled());
  std::fclose(out);
  std::string text{buf, len};
  std::free(buf);
  std::vector<int> next(threads, 0);
  size_t pos = 0;
  int count = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    BOOST_REQUIRE(nl != std::string::npos);
    auto j = nlohmann::json::parse(text.substr(pos, nl - pos));
    auto t = j["metadata"]["thread"].get<int>();
    // Each thread's lines come in its order.
    BOOST_REQUIRE_EQUAL(j["metadata"]["i"].get<int>(), next[t]++);
    BOOST_CHECK_EQUAL(j["measurements"]["data"].get<std::string>().size(), 200u);
    pos = nl + 1;
    ++count;
  }
  BOOST_CHECK_EQUAL(count, threads * per_thread);
}

BOOST_AUTO_TEST_SUITE_END()
