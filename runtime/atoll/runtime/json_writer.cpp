#include "atoll/runtime/json_writer.hpp"

#include <nlohmann/json.hpp>

namespace atl::telemetry {

namespace {

nlohmann::ordered_json to_json(const fields& fs) {
  auto obj = nlohmann::ordered_json::object();
  for (const auto& kv : fs.items()) {
    auto& slot = obj[kv.first];
    auto is_data = kv.first == "data";
    std::visit(
      [&slot, is_data](const auto& x) {
        using type = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<type, std::monostate>)
          slot = nullptr;
        else if constexpr (std::is_same_v<type, std::string>)
          slot = is_data ? to_hex(x) : x;
        else
          slot = x;
      },
      kv.second);
  }
  return obj;
}

} // namespace

std::string to_json(const event& ev) {
  nlohmann::ordered_json j;
  j["event"] = ev.name;
  j["measurements"] = to_json(ev.measurements);
  j["metadata"] = to_json(ev.metadata);
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

json_writer::json_writer(std::shared_ptr<bus> events, std::FILE* out, event_name prefix)
  : events_(std::move(events)), out_(out) {
  sub_ = events_->attach(std::move(prefix), [this](const event& ev) { write(ev); });
}

json_writer::~json_writer() {
  events_->detach(sub_);
}

uint64_t json_writer::lines() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return lines_;
}

void json_writer::write(const event& ev) {
  auto line = to_json(ev);
  line += '\n';
  std::lock_guard<std::mutex> guard{mtx_};
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
  ++lines_;
}

} // namespace atl::telemetry
