// dns_server: an authoritative DNS server for one zone file, on Atoll's UDP
// server (Abyss's DNS example, with libldns). Answers with the AA bit,
// NXDOMAIN for absent names, NODATA for absent types, REFUSED outside the
// zone, FORMERR (or silence) for malformed queries.
//
// Usage: dns_server --zone=FILE [--origin=NAME] [--port=N] [--host=ADDR] ...
//   dns_server --zone=examples/zones/example.test.zone --port=5300 --host=loopback
//   dig @127.0.0.1 -p 5300 www.example.test A
#include <memory>

#include "dns_zone.hpp"
#include "udp_example_common.hpp"

namespace {

class dns_config : public example::udp_server_config {
public:
  std::string zone;
  std::string origin;

  dns_config() {
    opt_group{custom_options_, "global"}
        .add(zone, "zone", "the zone file to serve (RFC 1035 master file; required)")
        .add(origin, "origin", "the origin until the file sets $ORIGIN (e.g. example.test.)");
  }

protected:
  std::optional<std::string> check_options() const override {
    if (auto problem = example::udp_server_config::check_options())
      return problem;
    if (zone.empty())
      return std::string{"--zone is required: the zone file to serve"};
    return std::nullopt;
  }
};

/// Answers each query datagram from the zone (one handler per datagram).
class dns_handler : public atl::udp_handler {
public:
  explicit dns_handler(std::shared_ptr<const example::dns_zone> zone) : zone_(std::move(zone)) {}

  atl::verdict handle_data(std::string_view query, socket& sock) override {
    if (auto reply = zone_->answer(query))
      static_cast<void>(sock.send(*reply)); // a full send buffer drops it, as UDP does
    return atl::verdict::proceed();
  }

private:
  std::shared_ptr<const example::dns_zone> zone_;
};

} // namespace

int main(int argc, char** argv) {
  return example::udp_main_of<dns_config>(
      argc, argv, [](caf::actor_system&, const dns_config& cfg, atl::udp_server_options& opts) {
        std::string error;
        auto zone = example::dns_zone::load(cfg.zone, cfg.origin, error);
        if (!zone) {
          example::say(std::string{"cannot load the zone: "} + error + "\n");
          return false;
        }
        example::say("serving " + zone->origin() + " (" + std::to_string(zone->size()) + " records)\n");
        opts.set_handler<dns_handler>(std::make_shared<const example::dns_zone>(std::move(*zone)));
        opts.name = "dns_server";
        return true;
      });
}
