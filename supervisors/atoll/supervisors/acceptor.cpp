#include "atoll/supervisors/acceptor.hpp"

#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/system_messages.hpp>

#include "atoll/handlers/detail/connection_actor.hpp"
#include "atoll/runtime/adoption_batch.hpp"
#include "atoll/runtime/atoms.hpp"
#include "atoll/runtime/error.hpp"
#include "atoll/supervisors/detail/server_options_access.hpp"
#include "atoll/runtime/span.hpp"

namespace atl::detail {

namespace {

using retry_atom = caf::atom_constant<caf::atom("retryconn")>;
using resume_atom = caf::atom_constant<caf::atom("resumeacc")>;

/// Connections accepted per socket event before yielding to other messages.
constexpr int accept_batch = 64;
/// The back-off after EMFILE/ENFILE.
constexpr std::chrono::milliseconds fd_limit_backoff{100};

class acceptor_actor final : public caf::event_based_actor {
public:
  acceptor_actor(caf::actor_config& cfg, std::shared_ptr<server_context> ctx,
                 std::shared_ptr<listen_endpoint> sock, caf::actor listener,
                 uint64_t listener_span, caf::actor conn_sup,
                 std::shared_ptr<session_slots> slots)
    : caf::event_based_actor(cfg),
      ctx_(std::move(ctx)),
      sock_(std::move(sock)),
      listener_(std::move(listener)),
      listener_span_(listener_span),
      conn_sup_(std::move(conn_sup)),
      slots_(std::move(slots)) {
    // The server's connection configuration with this acceptor's slots:
    // each connection actor gives its slot back itself when it ends.
    auto conf = std::make_shared<connection_config>(*ctx_->connections());
    conf->slots = slots_;
    conn_conf_ = std::move(conf);
    const auto& opts = ctx_->options();
    spawn_how_.hidden = opts.hidden_connections;
    spawn_how_.lazy = true;
    spawn_how_.light = opts.lightweight_connections;
  }

  const char* name() const override {
    return "atoll.acceptor";
  }

  caf::behavior make_behavior() override {
    span_ = telemetry::span::start(ctx_->events().get(), ctx_->acceptor_prefix().get(), {},
                                   local_fields(), listener_span_);
    attach_functor([this](const caf::error& reason) { cleanup(reason); });
    // The listener owns the port: when it goes, accepting is over.
    set_down_handler([this](caf::down_msg& msg) {
      if (msg.source == listener_.address())
        end_normally();
    });
    monitor(listener_);
    if (auto err = sock_->io().join(sock_->registration(),
                                    caf::actor_cast<caf::strong_actor_ptr>(this))) {
      quit(err);
      return {};
    }
    joined_ = true;
    return {
      [this](socket_ready_atom, int, uint32_t, uint32_t token) {
        if (token == sock_->registration().token)
          accept_batch_now();
      },
      [this](retry_atom, accepted_connection& conn, uint32_t retries_left) {
        start_connection(std::move(conn), retries_left);
        hand_over_spawned();
      },
      [this](resume_atom) { rearm(); },
    };
  }

private:
  void accept_batch_now() {
    accept_some();
    hand_over_spawned();
  }

  /// Accepts up to `accept_batch` connections, then re-arms the listen
  /// socket (or pauses it, or ends this actor).
  void accept_some() {
    for (int i = 0; i < accept_batch; ++i) {
      if (sock_->closed()) {
        end_normally();
        return;
      }
      auto res = accept_connection(sock_->fd(),
                                   detail::server_options_access::accept_hook(ctx_->options()));
      if (res.outcome == accept_outcome::would_block)
        break;
      ++count_;
      switch (res.outcome) {
        case accept_outcome::accepted: {
          accepted_connection conn;
          conn.fd = std::make_shared<owned_fd>(res.fd);
          conn.start_time = telemetry::monotonic_time();
          conn.acceptor_span = span_.context();
          conn.peer = res.peer;
          conn.peer_len = res.peer_len;
          start_connection(std::move(conn), ctx_->options().max_connections_retry_count);
          break;
        }
        case accept_outcome::aborted:
          emit("econnaborted");
          break;
        case accept_outcome::invalid:
          if (sock_->closed()) {
            end_normally();
            return;
          }
          emit("einval");
          break;
        case accept_outcome::transient:
          emit("accept_error", make_system_error("accept", res.error_number));
          break;
        case accept_outcome::fd_limit:
          // Out of descriptors: retrying at once would spin. Pause this
          // listen socket for all acceptors (nobody re-arms it meanwhile).
          emit("emfile", make_system_error("accept", res.error_number));
          delayed_send(this, fd_limit_backoff, resume_atom::value);
          return;
        case accept_outcome::closed:
          end_normally();
          return;
        case accept_outcome::fatal:
          quit(make_system_error("accept", res.error_number)); // crash: restarted
          return;
        case accept_outcome::would_block:
          break;
      }
    }
    rearm();
  }

  void rearm() {
    if (sock_->closed()) {
      end_normally();
      return;
    }
    if (auto err = sock_->io().rearm(sock_->registration(), io_events::readable)) {
      if (sock_->closed())
        end_normally();
      else
        quit(err);
    }
  }

  /// Starts a connection actor for `conn`: built-in handlers here, counted
  /// in the group's slots and handed to the connection supervisor after
  /// the accept batch (`hand_over_spawned`); a custom connection process
  /// or a detached connection by the connection supervisor
  /// (`start_child`). At the `num_connections` limit, retries later (this
  /// acceptor keeps accepting meanwhile) and finally closes the client.
  void start_connection(accepted_connection conn, uint32_t retries_left) {
    if (ctx_->options().connection_process || ctx_->options().detached_connections) {
      request_connection(std::move(conn), retries_left);
      return;
    }
    if (!slots_->try_take()) {
      spawn_failed(std::move(conn), retries_left, caf::make_error(errc::max_children));
      return;
    }
    // The actor gives the slot back when it ends (`connection_config::slots`).
    spawned_.push_back(spawn_connection(this, conn_conf_, std::move(conn), spawn_how_));
  }

  /// Hands the connection actors spawned since the last call to the
  /// connection supervisor in one `adopt_children` (one message per accept
  /// batch instead of a `start_child` round trip per connection), then
  /// lets them run: the adoption is in the supervisor's mailbox before
  /// any of them can answer a client, so whoever asks the supervisor
  /// about the server after that sees them. No reply is awaited: a
  /// stopping supervisor stops them itself, and if none takes them (it
  /// is gone, or dies with the batch in its mailbox, even after this
  /// acceptor ended) the batch tells them to stop (nobody would drain
  /// them).
  void hand_over_spawned() {
    if (spawned_.empty())
      return;
    send(conn_sup_, adopt_children_atom::value, adoption_batch{spawned_});
    for (auto& kid : spawned_)
      launch_connection(kid, context(), spawn_how_.light);
    spawned_.clear(); // keeps its capacity for the next batch
  }

  /// A custom connection process or a detached connection: the connection
  /// supervisor spawns it (and keeps `num_connections` as `max_children`).
  void request_connection(accepted_connection conn, uint32_t retries_left) {
    request(conn_sup_, caf::infinite, start_child_atom::value, caf::make_message(conn))
      .then([](const caf::actor&) {},
            [this, conn, retries_left](caf::error& err) mutable {
              spawn_failed(std::move(conn), retries_left, std::move(err));
            });
  }

  /// No connection actor for `conn` (yet): at the limit, retries later
  /// while retries are left; otherwise closes the client and emits
  /// `spawn_error`.
  void spawn_failed(accepted_connection conn, uint32_t retries_left, caf::error err) {
    if (err == errc::max_children && retries_left > 0) {
      delayed_send(this, ctx_->options().max_connections_retry_wait, retry_atom::value,
                   std::move(conn), retries_left - 1);
      return;
    }
    conn.fd->reset(); // close the client (no-op if a connection took it)
    if (err == errc::max_children)
      emit("spawn_error");
    else
      emit("spawn_error", err);
  }

  void emit(const char* event, const caf::error& err = {}) {
    if (!span_.enabled())
      return;
    telemetry::fields m{{"monotonic_time", telemetry::monotonic_time()}};
    if (err)
      m.set("error", describe(err));
    span_.emit(event, std::move(m), local_fields());
  }

  /// The listen socket's address (metadata of the acceptor's start and error
  /// events, so that a logger attached later can name the server).
  telemetry::fields local_fields() const {
    telemetry::fields meta;
    if (ctx_->events()->enabled()) {
      meta.set("local_address", sock_->local().address);
      meta.set("local_port", uint64_t{sock_->local().port});
    }
    return meta;
  }

  void end_normally() {
    quit();
  }

  void cleanup(const caf::error& reason) {
    if (joined_)
      sock_->io().leave(sock_->registration(), address());
    telemetry::fields meta;
    if (reason && reason != caf::exit_reason::user_shutdown)
      meta.set("error", describe(reason));
    span_.stop({{"connections", count_}}, std::move(meta));
  }

  std::shared_ptr<server_context> ctx_;
  std::shared_ptr<listen_endpoint> sock_;
  caf::actor listener_;
  uint64_t listener_span_;
  caf::actor conn_sup_;
  std::shared_ptr<session_slots> slots_;
  std::shared_ptr<const connection_config> conn_conf_; // with slots_
  connection_spawn_options spawn_how_;
  std::vector<caf::actor> spawned_; // not yet handed to conn_sup_
  telemetry::span span_;
  uint64_t count_ = 0;
  bool joined_ = false;
};

} // namespace

child_spec acceptor_spec(std::shared_ptr<server_context> ctx, uint32_t id,
                         std::shared_ptr<acceptor_group> group) {
  child_spec spec;
  spec.id = "acceptor";
  spec.restart = restart_type::transient;
  spec.start = [ctx, id, group](start_context& sc) -> caf::expected<caf::actor> {
    auto listener = ctx->listener();
    if (!listener)
      return caf::make_error(errc::suspended, "no listener to accept on");
    auto conn_sup = group->connection_supervisor();
    if (!conn_sup)
      return caf::make_error(errc::start_failed, "acceptor without connection supervisor");
    auto& sockets = listener->sockets;
    auto sock = sockets[(id - 1) % sockets.size()];
    return sc.self()->spawn<acceptor_actor>(ctx, sock, listener->actor, listener->span_context,
                                            conn_sup, group->slots());
  };
  return spec;
}

} // namespace atl::detail
