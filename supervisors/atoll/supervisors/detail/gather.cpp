#include "atoll/supervisors/detail/gather.hpp"

#include <algorithm>

#include <caf/sec.hpp>

#include "atoll/handlers/connection_record.hpp"

namespace atl::detail {

void gather_records(caf::event_based_actor* self, std::vector<caf::actor> conns,
                    caf::typed_response_promise<std::vector<connection_record>> rp) {
  auto targets = conns;
  ask_all<connection_record>(
      self, targets, caf::make_message(connection_info_atom::value), caf::duration{record_timeout},
      [rp, conns{std::move(conns)}](std::vector<caf::expected<connection_record>> records) mutable {
        std::vector<connection_record> result;
        result.reserve(records.size());
        for (size_t i = 0; i < records.size(); ++i) {
          if (records[i]) {
            result.push_back(std::move(*records[i]));
          } else if (records[i].error() == caf::sec::request_timeout) {
            connection_record busy; // did not answer in time
            busy.handle = conns[i];
            result.push_back(std::move(busy));
          }
        }
        std::sort(result.begin(), result.end(),
                  [](const connection_record& a, const connection_record& b) {
                    return a.handle.id() < b.handle.id();
                  });
        rp.deliver(std::move(result));
      });
}

void describe_connection(caf::event_based_actor* self, const caf::actor& child,
                         std::function<void(std::vector<tree_detail>)> done) {
  self->request(child, caf::duration{record_timeout}, connection_info_atom::value)
    .then([done](connection_record& rec) { done(to_details(rec)); },
          [done](caf::error&) { done({}); });
}

} // namespace atl::detail
