// What every example server offers to be seen from outside: the inspector
// (--inspector-port, --inspector-control) for atoll-observer and other CAF
// nodes, the live observer page (--observer-port), and the end of the
// program when its server is stopped from there.
#pragma once

#include <atomic>
#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <sys/types.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include "atoll/all.hpp"
#include "example_options.hpp"

namespace example {

/// The options, added to an example's config by `add_to`.
struct inspection_options {
  int inspector_port = -1;
  bool inspector_control = false;
  int observer_port = -1;
  std::string inspector_cert; // all three set: TLS between nodes
  std::string inspector_key;
  std::string inspector_ca;

  void add_to(caf::config_option_set& set) {
    caf::config_option_adder{set, "global"}
      .add(inspector_port, "inspector-port",
           "publish the inspector (for atoll-observer and other CAF nodes) on loopback port "
           "0..65535 (0: pick a free port; -1: off, the default)")
      .add(inspector_control, "inspector-control",
           "let remote nodes suspend, resume and stop the server through the inspector "
           "(needs --inspector-port)")
      .add(inspector_cert, "inspector-cert",
           "publish the inspector over TLS (CAF's OpenSSL module): this node's certificate "
           "(PEM); needs --inspector-key and --inspector-ca; atoll-observer then connects with "
           "--cert, --key and --ca")
      .add(inspector_key, "inspector-key", "the private key (PEM) of --inspector-cert")
      .add(inspector_ca, "inspector-ca",
           "the CA (PEM) whose certificates other nodes must present to the inspector")
      .add(observer_port, "observer-port",
           "serve the live observer page at http://127.0.0.1:PORT/, 0..65535 (0: pick a free "
           "port; -1: off, the default)");
  }

  /// A problem with the values, or nullopt.
  std::optional<std::string> check() const {
    if (inspector_port < -1 || inspector_port > 65535)
      return "--inspector-port must be 0..65535 (or -1: off), got "
             + std::to_string(inspector_port);
    if (inspector_control && inspector_port == -1)
      return std::string{"--inspector-control needs --inspector-port"};
    if (inspector_cert.empty() != inspector_key.empty()
        || inspector_cert.empty() != inspector_ca.empty())
      return std::string{"--inspector-cert, --inspector-key and --inspector-ca go together"};
    if (!inspector_cert.empty() && inspector_port == -1)
      return std::string{"--inspector-cert needs --inspector-port"};
    if (observer_port < -1 || observer_port > 65535)
      return "--observer-port must be 0..65535 (or -1: off), got " + std::to_string(observer_port);
    return std::nullopt;
  }

  /// Loads what the options need into the config (before the actor system
  /// is made): CAF's middleman for a published inspector, and its OpenSSL
  /// module with the node's certificate for a secure one.
  void prepare(caf::actor_system_config& cfg) const {
    if (inspector_port >= 0)
      cfg.load<caf::io::middleman>();
    if (!inspector_cert.empty()) {
      cfg.load<caf::openssl::manager>();
      cfg.openssl_certificate = inspector_cert;
      cfg.openssl_key = inspector_key;
      cfg.openssl_cafile = inspector_ca;
    }
  }
};

/// The inspector and the page of a running example, and its stop.
class inspector_services {
public:
  /// Starts what `opts` asks for; `show` adds the example's server to the
  /// inspector. False (after saying why on stderr) if something could not
  /// start; nothing is left running then.
  bool start(caf::actor_system& sys, const inspection_options& opts,
             const std::function<void(const atl::inspector_actor&)>& show) {
    control_ = opts.inspector_control;
    if (opts.inspector_port >= 0) {
      atl::inspector_options io;
      io.port = static_cast<uint16_t>(opts.inspector_port);
      io.control = opts.inspector_control;
      io.secure = !opts.inspector_cert.empty();
      secure_ = io.secure;
      auto published = atl::spawn_inspector(sys, io);
      if (!published) {
        say("cannot start the inspector: " + atl::describe(published.error()) + "\n");
        return false;
      }
      inspector_ = published->handle;
      port_ = published->port;
    } else if (opts.observer_port >= 0) {
      inspector_ = atl::spawn_local_inspector(sys);
    }
    if (inspector_)
      show(*inspector_);
    if (opts.observer_port >= 0) {
      atl::observer_page_options po;
      po.port = static_cast<uint32_t>(opts.observer_port);
      auto page = atl::start_observer_page(sys, *inspector_, po);
      if (!page) {
        say("cannot start the observer page: " + atl::describe(page.error()) + "\n");
        stop();
        return false;
      }
      page_ = *page;
    }
    return true;
  }

  /// Says where they are, on stderr (after the "listening on" line).
  void print() const {
    if (port_)
      say("inspector on 127.0.0.1:" + std::to_string(*port_) + (secure_ ? " (TLS)" : "")
          + (control_ ? " (control enabled)\n" : "\n"));
    if (page_) {
      if (auto where = page_->listener_info())
        say("observer on http://" + atl::to_string(*where) + "/\n");
    }
  }

  /// Stops the page and the inspector.
  void stop() {
    if (page_) {
      if (auto err = page_->stop())
        say("stop of the observer page: " + atl::describe(err) + "\n");
      page_.reset();
    }
    if (inspector_) {
      caf::anon_send_exit(*inspector_, caf::exit_reason::user_shutdown);
      inspector_.reset();
    }
  }

private:
  std::optional<atl::inspector_actor> inspector_;
  std::optional<uint16_t> port_;
  std::optional<atl::server> page_;
  bool control_ = false;
  bool secure_ = false;
};

/// Ends the program's wait for a stop signal when the server `root` ends
/// without one (stopped through the inspector): raises SIGTERM then.
class stop_watch {
public:
  template <class Handle>
  stop_watch(caf::actor_system& sys, const Handle& root) {
    auto elsewhere = elsewhere_;
    auto here = here_;
    // The handle is kept: an actor nothing references ends at once.
    watcher_ = sys.spawn([root, elsewhere, here](caf::event_based_actor* self) -> caf::behavior {
      self->monitor(root);
      self->set_down_handler([self, elsewhere, here](caf::down_msg&) {
        if (!here->load()) {
          elsewhere->store(true);
          ::kill(::getpid(), SIGTERM);
        }
        self->quit();
      });
      return {[](caf::ok_atom) {}}; // waits for the down message
    });
  }

  stop_watch(const stop_watch&) = delete;
  stop_watch& operator=(const stop_watch&) = delete;

  ~stop_watch() {
    here_->store(true);
    caf::anon_send_exit(watcher_, caf::exit_reason::user_shutdown);
  }

  /// Call when the stop signal came: true if the server had ended already.
  bool stopped_elsewhere() {
    here_->store(true);
    if (elsewhere_->load()) {
      say("the server stopped without a stop signal (e.g. through the inspector), exiting\n");
      return true;
    }
    return false;
  }

private:
  std::shared_ptr<std::atomic<bool>> elsewhere_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<bool>> here_ = std::make_shared<std::atomic<bool>>(false);
  caf::actor watcher_;
};

} // namespace example
