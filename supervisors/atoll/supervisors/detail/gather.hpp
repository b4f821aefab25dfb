// Internal: asking many actors at once from inside a server's root
// supervisor, and the connection records gathered from connection actors
// (`connections_atom` of the TCP and the UDP server).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include <caf/actor.hpp>
#include <caf/duration.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>
#include <caf/message.hpp>
#include <caf/typed_response_promise.hpp>

#include "atoll/handlers/connection_record.hpp"
#include "atoll/runtime/types.hpp"

namespace atl::detail {

/// How long a connection actor may take to report its record.
inline constexpr auto record_timeout = std::chrono::seconds{5};

/// Asks every actor of `targets` for `Reply` with `msg` (from `self`); calls
/// `k` with one result per target, in order, once all answered. Runs in
/// `self`.
template <class Reply>
void ask_all(caf::event_based_actor* self, const std::vector<caf::actor>& targets, caf::message msg,
             caf::duration timeout, std::function<void(std::vector<caf::expected<Reply>>)> k) {
  if (targets.empty()) {
    k({});
    return;
  }
  struct gathering {
    std::vector<caf::expected<Reply>> results;
    size_t pending;
    std::function<void(std::vector<caf::expected<Reply>>)> k;
  };
  auto g = std::make_shared<gathering>();
  g->results.resize(targets.size(), caf::expected<Reply>{caf::error{}});
  g->pending = targets.size();
  g->k = std::move(k);
  auto arrive = [g](size_t i, caf::expected<Reply> x) {
    g->results[i] = std::move(x);
    if (--g->pending == 0)
      g->k(std::move(g->results));
  };
  for (size_t i = 0; i < targets.size(); ++i)
    self->request(targets[i], timeout, msg)
        .then([arrive, i](Reply& x) { arrive(i, std::move(x)); },
              [arrive, i](caf::error& err) { arrive(i, std::move(err)); });
}

/// Asks each actor of `conns` for its `connection_record` and delivers them
/// to `rp`, ordered by actor id. An actor that ended meanwhile is left out;
/// one that does not answer within `record_timeout` is listed with its
/// handle only. Runs in `self`.
void gather_records(caf::event_based_actor* self, std::vector<caf::actor> conns,
                    caf::typed_response_promise<std::vector<connection_record>> rp);

/// A child spec's `describe` for connection actors (TCP, TLS and UDP
/// handler actors): their record as the details of their tree node (none
/// if the actor does not answer within `record_timeout`). Runs in `self`.
void describe_connection(caf::event_based_actor* self, const caf::actor& child,
                         std::function<void(std::vector<tree_detail>)> done);

} // namespace atl::detail
