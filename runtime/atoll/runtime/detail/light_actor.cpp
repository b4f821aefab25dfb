#include "atoll/runtime/detail/light_actor.hpp"

#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/detail/default_invoke_result_visitor.hpp>
#include <caf/detail/sync_request_bouncer.hpp>
#include <caf/execution_unit.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/sec.hpp>
#include <caf/system_messages.hpp>

namespace atl::detail {

namespace {

using visitor = caf::detail::default_invoke_result_visitor<caf::local_actor>;

/// Frees a list of mailbox elements, answering requests among them with
/// `bounce`.
void bounce_list(caf::mailbox_element*& head, caf::mailbox_element*& tail,
                 const caf::detail::sync_request_bouncer& bounce) {
  while (head != nullptr) {
    caf::mailbox_element_ptr x{head};
    head = static_cast<caf::mailbox_element*>(head->next);
    bounce(*x);
  }
  tail = nullptr;
}

/// Collects what a clean-up schedules (actors woken by down and exit
/// messages) while a stopping scheduler runs no worker.
class collecting_unit final : public caf::execution_unit {
public:
  explicit collecting_unit(caf::actor_system& sys) : caf::execution_unit(&sys) {
  }

  void exec_later(caf::resumable* job) override {
    jobs.push_back(job);
  }

  std::vector<caf::resumable*> jobs;
};

} // namespace

light_actor::light_actor(caf::actor_config& cfg) : caf::local_actor(cfg) {
}

light_actor::~light_actor() = default;

void light_actor::enqueue(caf::mailbox_element_ptr what, caf::execution_unit* host) {
  auto mid = what->mid;
  auto sender = what->sender;
  switch (inbox_.push_front(what.release())) {
    case caf::intrusive::inbox_result::unblocked_reader:
      // The scheduler holds a reference while the actor waits for its run.
      intrusive_ptr_add_ref(ctrl());
      if (host != nullptr)
        host->exec_later(this);
      else
        home_system().scheduler().enqueue(this);
      break;
    case caf::intrusive::inbox_result::queue_closed:
      // (Not the fail state: the owner may be writing it. The bouncer
      // answers request_receiver_down whatever the reason.)
      if (mid.is_request()) {
        caf::detail::sync_request_bouncer bounce{caf::error{}};
        bounce(sender, mid);
      }
      break;
    case caf::intrusive::inbox_result::success:
      break;
  }
}

void light_actor::launch(caf::execution_unit* host, bool lazy, bool hide) {
  if (!hide)
    register_at_system();
  if (lazy && inbox_.try_block())
    return;
  intrusive_ptr_add_ref(ctrl());
  if (host != nullptr)
    host->exec_later(this);
  else
    home_system().scheduler().enqueue(this);
}

bool light_actor::cleanup(caf::error&& reason, caf::execution_unit* host) {
  if (getf(is_cleaned_up_flag))
    return false;
  caf::detail::sync_request_bouncer bounce{reason};
  bounce_list(skipped_head_, skipped_tail_, bounce);
  bounce_list(fifo_head_, fifo_tail_, bounce);
  if (!inbox_.closed()) {
    auto drop = [&](caf::mailbox_element* ptr) {
      caf::mailbox_element_ptr x{ptr};
      bounce(*x);
    };
    inbox_.close(drop);
  }
  // What local_actor::cleanup does besides, without its clock look-up:
  // this actor cannot have asked the clock for anything.
  unregister_from_system();
  return caf::monitorable_actor::cleanup(std::move(reason), host);
}

void light_actor::on_destroy() {
  if (!getf(is_cleaned_up_flag))
    cleanup(caf::exit_reason::unreachable, nullptr);
}

caf::resumable::subtype_t light_actor::subtype() const {
  return caf::resumable::unspecified;
}

void light_actor::intrusive_ptr_add_ref_impl() {
  intrusive_ptr_add_ref(ctrl());
}

void light_actor::intrusive_ptr_release_impl() {
  intrusive_ptr_release(ctrl());
}

caf::resumable::resume_result light_actor::resume(caf::execution_unit* unit,
                                                  size_t max_throughput) {
  context(unit);
  if (getf(is_cleaned_up_flag))
    return done;
  if (!getf(is_initialized_flag)) {
    setf(is_initialized_flag);
    try {
      on_start();
    } catch (...) {
      auto ep = std::current_exception();
      quit(on_exception(ep));
    }
    if (finalize())
      return done;
  }
  size_t consumed = 0;
  while (consumed < max_throughput) {
    if (fifo_head_ == nullptr) {
      fetch();
      if (fifo_head_ == nullptr) {
        if (inbox_.try_block())
          return awaiting_message;
        continue; // a message came meanwhile
      }
    }
    auto* x = fifo_head_;
    fifo_head_ = static_cast<caf::mailbox_element*>(x->next);
    if (fifo_head_ == nullptr)
      fifo_tail_ = nullptr;
    x->next = nullptr;
    if (consume(*x)) {
      caf::mailbox_element_ptr finished{x};
      ++consumed;
      // As CAF does: what was skipped is tried again after each message
      // handled (unless the derived class holds it back).
      if (!hold_skipped_)
        requeue_skipped();
    } else if (skipped_tail_ == nullptr) {
      skipped_head_ = skipped_tail_ = x;
    } else {
      skipped_tail_->next = x;
      skipped_tail_ = x;
    }
    if (finalize())
      return done;
  }
  return try_block_mailbox() ? awaiting_message : resume_later;
}

void light_actor::quit(caf::error reason) {
  if (quitting_)
    return;
  quitting_ = true;
  reason_ = std::move(reason);
}

bool light_actor::finalize() {
  if (getf(is_cleaned_up_flag))
    return true;
  if (!quitting_)
    return false;
  cleanup(std::move(reason_), context());
  return true;
}

bool light_actor::try_block_mailbox() noexcept {
  return fifo_head_ == nullptr && inbox_.try_block();
}

void light_actor::requeue_skipped() noexcept {
  if (skipped_head_ == nullptr)
    return;
  skipped_tail_->next = fifo_head_;
  if (fifo_head_ == nullptr)
    fifo_tail_ = skipped_tail_;
  fifo_head_ = skipped_head_;
  skipped_head_ = skipped_tail_ = nullptr;
}

void light_actor::cleanup_and_release(caf::resumable* job) {
  // CAF's own cleanup_and_release would neither clean up nor release the
  // light actors that a scheduled actor's clean-up wakes: all of them go
  // through here.
  caf::local_actor* actor = nullptr;
  if (auto* light = dynamic_cast<light_actor*>(job)) {
    actor = light;
  } else if (job->subtype() == caf::resumable::scheduled_actor
             || job->subtype() == caf::resumable::io_actor) {
    actor = static_cast<caf::scheduled_actor*>(job);
  }
  if (actor != nullptr) {
    collecting_unit unit{actor->home_system()};
    actor->context(&unit);
    actor->cleanup(caf::exit_reason::user_shutdown, &unit);
    // Actors that the clean-up woke hold a reference from the scheduler.
    while (!unit.jobs.empty()) {
      auto* next = unit.jobs.back();
      unit.jobs.pop_back();
      cleanup_and_release(next);
    }
  }
  job->intrusive_ptr_release_impl();
}

void light_actor::on_exit_message(caf::exit_msg& msg) {
  if (msg.reason && msg.reason != caf::exit_reason::normal)
    quit(std::move(msg.reason));
}

caf::error light_actor::on_exception(std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& ex) {
    return caf::make_error(caf::sec::runtime_error, std::string{ex.what()});
  } catch (...) {
    return caf::make_error(caf::sec::runtime_error, std::string{"non-standard exception"});
  }
}

caf::match_case::result light_actor::invoke(caf::message_handler& handlers,
                                            caf::mailbox_element& x) {
  visitor v{this};
  return handlers(v, x.content());
}

void light_actor::reply(caf::message msg) {
  visitor v{this};
  v(msg);
}

void light_actor::reply(caf::error err) {
  visitor v{this};
  v(err);
}

void light_actor::drop(caf::mailbox_element&) {
  reply(caf::make_error(caf::sec::unexpected_message));
}

bool light_actor::consume(caf::mailbox_element& x) {
  current_mailbox_element(&x);
  auto result = handled::consumed;
  try {
    auto& content = x.content();
    if (x.mid.is_response()) {
      // This actor awaits no response (it cannot request): dropped, as CAF
      // drops responses nobody waits for.
    } else if (content.match_elements<caf::exit_msg>()) {
      auto& msg = content.get_mutable_as<caf::exit_msg>(0);
      unlink_from(msg.source);
      if (msg.reason == caf::exit_reason::kill)
        quit(std::move(msg.reason));
      else
        on_exit_message(msg);
    } else if (content.match_elements<caf::error>()) {
      quit(content.get_as<caf::error>(0));
    } else if (content.match_elements<caf::down_msg>()
               || content.match_elements<caf::timeout_msg>()) {
      // Nothing here monitors or waits: nothing to do.
    } else if (content.match_elements<caf::sys_atom, caf::get_atom, std::string>()) {
      const auto& what = content.get_as<std::string>(2);
      if (what == "info")
        reply(caf::make_message(caf::ok_atom::value, what, caf::strong_actor_ptr{ctrl()},
                                std::string{name()}));
      else
        reply(caf::make_error(caf::sec::unsupported_sys_key));
    } else {
      result = on_message(x);
    }
  } catch (...) {
    auto ep = std::current_exception();
    auto err = on_exception(ep);
    if (x.mid.is_request()) // CAF 0.17.6 answers requests only
      reply(err);
    quit(std::move(err));
  }
  current_mailbox_element(nullptr);
  return result == handled::consumed;
}

void light_actor::fetch() noexcept {
  // The inbox is a stack (newest first): reverse it behind what is left.
  caf::mailbox_element* reversed = nullptr;
  caf::mailbox_element* last = nullptr;
  for (auto* x = inbox_.take_head(); x != nullptr;) {
    auto* next = static_cast<caf::mailbox_element*>(x->next);
    if (last == nullptr)
      last = x;
    x->next = reversed;
    reversed = x;
    x = next;
  }
  if (reversed == nullptr)
    return;
  if (fifo_tail_ == nullptr)
    fifo_head_ = reversed;
  else
    fifo_tail_->next = reversed;
  fifo_tail_ = last;
}

} // namespace atl::detail
