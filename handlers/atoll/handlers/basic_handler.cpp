#include "atoll/handlers/basic_handler.hpp"

#include "atoll/handlers/detail/handler_host.hpp"
#include "atoll/handlers/socket.hpp"
#include "atoll/handlers/udp_handler.hpp"

namespace atl {

template <class Socket>
basic_handler<Socket>::~basic_handler() = default;

template <class Socket>
verdict basic_handler<Socket>::handle_connection(socket&) {
  return verdict::proceed();
}

template <class Socket>
verdict basic_handler<Socket>::handle_data(std::string_view, socket&) {
  return verdict::proceed();
}

template <class Socket>
void basic_handler<Socket>::handle_close(socket&) {}

template <class Socket>
void basic_handler<Socket>::handle_error(const caf::error&, socket&) {}

template <class Socket>
void basic_handler<Socket>::handle_shutdown(socket&) {}

template <class Socket>
void basic_handler<Socket>::handle_timeout(socket&) {}

template <class Socket>
caf::message_handler basic_handler<Socket>::message_handlers(socket&) {
  return {};
}

template <class Socket>
void basic_handler<Socket>::apply(verdict v) {
  if (host_ != nullptr)
    host_->apply_verdict(std::move(v));
}

template <class Socket>
caf::event_based_actor* basic_handler<Socket>::self() const {
  return host_ != nullptr ? host_->actor() : nullptr;
}

template class basic_handler<socket>;
template class basic_handler<udp_socket>;

} // namespace atl
