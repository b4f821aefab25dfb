// Internal: a CAF actor without `caf::scheduled_actor`'s machinery, for
// actors that live briefly and in great numbers. Not part of the public API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>

#include <caf/actor_traits.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/intrusive/lifo_inbox.hpp>
#include <caf/local_actor.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message_handler.hpp>
#include <caf/policy/normal_messages.hpp>
#include <caf/resumable.hpp>

namespace atl::detail {

/// An untyped local actor that handles its mailbox itself: no behavior
/// stack, no DRR mailbox with four queues, no streams, no awaited responses,
/// no receive timeouts. A life cycle (made, one message, ended, destroyed)
/// costs 37-39% of an `event_based_actor`'s instructions and 24% of its
/// bytes (a prototype, on CAF's and on Atoll's scheduler). It does what CAF's scheduled
/// actors do with the messages they all understand: an exit message unlinks
/// its source and ends the actor unless its reason is `normal` (`kill`
/// always), an `error` message ends it, `(sys, get, "info")` is answered,
/// a down or timeout message is dropped, a request that nothing answers
/// gets `sec::unexpected_message`, and the requests waiting when it ends
/// get `sec::request_receiver_down`. Derived classes handle ordinary
/// messages (`on_message`), may skip them for later (`requeue_skipped`
/// brings them back), and must not call `request` or `become`: the actor
/// cannot wait for responses. It runs on a scheduler's worker, never
/// detached. Every member runs in the actor's own context unless it says
/// otherwise.
class light_actor : public caf::local_actor,
                    public caf::resumable,
                    public caf::dynamically_typed_actor_base,
                    public caf::non_blocking_actor_base {
public:
  /// What `on_message` did with a message.
  enum class handled : uint8_t {
    /// Done with it (answered, if it was a request and a reply is due).
    consumed,
    /// Keep it, in order, until `requeue_skipped`.
    skipped,
  };

  explicit light_actor(caf::actor_config& cfg);

  ~light_actor() override;

  // -- abstract_actor and local_actor -------------------------------------------

  /// Puts a message in the mailbox and schedules the actor if it was
  /// waiting. Thread-safe.
  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* host) override;

  /// Registers the actor (unless hidden) and schedules its first run on
  /// `host` (null: the scheduler's choice); `lazy`: not before a message
  /// or `try_unblock_mailbox` wakes it.
  void launch(caf::execution_unit* host, bool lazy, bool hide) override;

  /// Closes the mailbox (bouncing waiting requests), unregisters the actor
  /// and runs CAF's clean-up (monitors, links, attached functions). Runs
  /// once; later calls return false.
  bool cleanup(caf::error&& reason, caf::execution_unit* host) override;

  /// An actor that never ran to its end is cleaned up with
  /// `exit_reason::unreachable`.
  void on_destroy() override;

  // -- resumable ----------------------------------------------------------------

  /// `unspecified`: CAF's own clean-up of scheduled actors must not take
  /// this for one (see `cleanup_and_release`).
  subtype_t subtype() const override;

  void intrusive_ptr_add_ref_impl() override;

  void intrusive_ptr_release_impl() override;

  /// The first run calls `on_start`; then handles up to `max_throughput`
  /// messages, in order.
  resume_result resume(caf::execution_unit* unit, size_t max_throughput) override;

  // -- state --------------------------------------------------------------------

  /// Ends the actor with `reason` once the current callback returns (the
  /// first call decides the reason).
  void quit(caf::error reason = caf::error{});

  /// Cleans the actor up if it quit; true if it is done (cleaned up).
  bool finalize();

  /// Blocks the mailbox if no message waits (none in the inbox, none taken
  /// from it and left); true if blocked: the next message or
  /// `try_unblock_mailbox` schedules the actor again.
  bool try_block_mailbox() noexcept;

  /// Unblocks a blocked mailbox; true if this call did it (the caller must
  /// then get the actor run). Thread-safe.
  bool try_unblock_mailbox() noexcept {
    return inbox_.try_unblock();
  }

  /// Puts the messages `on_message` skipped back ahead of the others, in
  /// their order. Runs after each message handled, unless `hold_skipped`.
  void requeue_skipped() noexcept;

  /// While `hold` is true, skipped messages stay aside until
  /// `requeue_skipped` (a derived class that skips whole classes of
  /// messages for a while saves trying them again after every message).
  void hold_skipped(bool hold) noexcept {
    hold_skipped_ = hold;
  }

  /// The clean-up of a job that a stopping scheduler still had queued:
  /// a light actor is cleaned up with `exit_reason::user_shutdown` (as CAF
  /// does for its scheduled actors), anything else goes to CAF's
  /// `cleanup_and_release`; the scheduler's reference is released. Runs on
  /// the thread stopping the scheduler, after its workers stopped.
  static void cleanup_and_release(caf::resumable* job);

protected:
  /// The first run, before any message (like `make_behavior`). An exception
  /// ends the actor (`on_exception`).
  virtual void on_start() = 0;

  /// An ordinary message (not one of those the class comment lists). An
  /// exception ends the actor (`on_exception`); a request gets its error.
  virtual handled on_message(caf::mailbox_element& x) = 0;

  /// An exit message whose reason is not `kill` (its source is unlinked
  /// already). Default: quits unless the reason is `normal`.
  virtual void on_exit_message(caf::exit_msg& msg);

  /// An exception escaped `on_start` or `on_message`: returns the reason
  /// the actor ends with. Default: `sec::runtime_error` with the text.
  virtual caf::error on_exception(std::exception_ptr& ep);

  /// Runs `handlers` on `x`, replying to a request with what the matching
  /// handler returns (as CAF's behaviors do): `no_match` if none matched,
  /// `skip` if the one that matched returned `caf::skip`.
  caf::match_case::result invoke(caf::message_handler& handlers, caf::mailbox_element& x);

  /// Replies to the current message, if it is a request, with `msg`.
  void reply(caf::message msg);

  /// Replies to the current message, if it is a request, with `err`.
  void reply(caf::error err);

  /// What CAF's `drop` does with an unmatched message: a request gets
  /// `sec::unexpected_message`.
  void drop(caf::mailbox_element& x);

  /// Whether `quit` was called.
  bool quitting() const noexcept {
    return quitting_;
  }

private:
  /// Handles one message; false if it was skipped.
  bool consume(caf::mailbox_element& x);

  /// Takes what the inbox holds into `fifo_`, oldest first.
  void fetch() noexcept;

  caf::intrusive::lifo_inbox<caf::policy::normal_messages> inbox_;
  caf::mailbox_element* fifo_head_ = nullptr; // taken from the inbox, oldest first
  caf::mailbox_element* fifo_tail_ = nullptr;
  caf::mailbox_element* skipped_head_ = nullptr; // skipped, oldest first
  caf::mailbox_element* skipped_tail_ = nullptr;
  caf::error reason_; // set by quit
  bool quitting_ = false;
  bool hold_skipped_ = false;
};

} // namespace atl::detail
