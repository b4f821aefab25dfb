#include "atoll/supervisors/detail/server_protocol.hpp"

#include <caf/actor_cast.hpp>
#include <caf/event_based_actor.hpp>

#include "atoll/runtime/error.hpp"
#include "atoll/supervisors/detail/gather.hpp"
#include "atoll/supervisors/udp_server.hpp"
#include "atoll/supervisors/udp_server_context.hpp"

namespace atl::detail {

namespace {

caf::expected<endpoint> local_of(const udp_server_context& ctx) {
  auto sockets = ctx.sockets();
  if (sockets.empty())
    return caf::make_error(errc::suspended, "the server is not receiving");
  return sockets.front()->socket()->local();
}

server_status status_of(const udp_server_context& ctx) {
  if (ctx.stopping.load())
    return server_status::stopped;
  return ctx.sockets().empty() ? server_status::suspended : server_status::running;
}

/// Refuses control requests once the server stops.
caf::error refuse_if_stopping(const udp_server_context& ctx) {
  if (ctx.stopping.load())
    return caf::make_error(errc::shutting_down, "the server is stopping");
  return caf::none;
}

} // namespace

caf::message_handler udp_server_protocol(caf::event_based_actor* self,
                                         std::shared_ptr<udp_server_context> ctx) {
  auto me = [self] { return caf::actor_cast<caf::actor>(self); };
  return {
    [self, ctx, me](listening_atom) -> caf::result<endpoint> {
      auto rp = self->make_response_promise<endpoint>();
      self->request(me(), caf::infinite, await_started_atom::value)
        .then(
          [ctx, rp](caf::ok_atom) mutable {
            if (auto local = local_of(*ctx))
              rp.deliver(std::move(*local));
            else
              rp.deliver(std::move(local.error()));
          },
              [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [ctx](listener_info_atom) -> caf::result<endpoint> {
      if (auto local = local_of(*ctx))
        return std::move(*local);
      else
        return std::move(local.error());
    },
    [ctx](status_atom) { return status_of(*ctx); },
    [self, ctx](server_info_atom) -> caf::result<server_info> {
      server_info result;
      result.status = status_of(*ctx);
      if (auto local = local_of(*ctx))
        result.local = *local;
      auto sup = ctx->connection_supervisor();
      if (!sup)
        return result;
      auto rp = self->make_response_promise<server_info>();
      self->request(sup, caf::infinite, count_children_atom::value)
        .then(
          [rp, result](child_counts& counts) mutable {
            result.active_connections = counts.active;
            rp.deliver(result);
          },
          [rp, result](caf::error&) mutable { rp.deliver(result); }); // restarting: none
      return rp;
    },
    [self, ctx](connections_atom) -> caf::result<std::vector<connection_record>> {
      auto sup = ctx->connection_supervisor();
      if (!sup)
        return std::vector<connection_record>{};
      auto rp = self->make_response_promise<std::vector<connection_record>>();
      self->request(sup, caf::infinite, which_children_atom::value)
        .then(
          [self, rp](std::vector<child_info>& children) mutable {
            std::vector<caf::actor> handlers;
            for (auto& child : children)
              if (child.handle)
                handlers.push_back(child.handle);
            gather_records(self, std::move(handlers), rp);
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    // One child holds every socket: stopping or restarting it is all or
    // nothing, and the supervisor runs such requests one at a time.
    [self, ctx, me](suspend_atom) -> caf::result<caf::ok_atom> {
      if (auto err = refuse_if_stopping(*ctx))
        return err;
      auto rp = self->make_response_promise<caf::ok_atom>();
      self->request(me(), caf::infinite, terminate_child_atom::value, std::string{"listener_pool"})
        .then([rp](caf::ok_atom) mutable { rp.deliver(caf::ok_atom::value); },
              [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [self, ctx, me](resume_atom) -> caf::result<caf::ok_atom> {
      if (auto err = refuse_if_stopping(*ctx))
        return err;
      auto rp = self->make_response_promise<caf::ok_atom>();
      self->request(me(), caf::infinite, restart_child_atom::value, std::string{"listener_pool"})
        .then([rp](caf::actor&) mutable { rp.deliver(caf::ok_atom::value); },
              [rp](caf::error& err) mutable {
                if (err == errc::running)
                  rp.deliver(caf::ok_atom::value);
                else
                  rp.deliver(std::move(err));
              });
      return rp;
    },
  };
}

} // namespace atl::detail
