#include "atoll/handlers/handler.hpp"

#include "atoll/handlers/detail/handler_host.hpp"

#include <cstdlib>
#include <memory>

#include <cxxabi.h>

namespace atl {

detail::handler_host::~handler_host() = default;

handler::~handler() = default;

verdict handler::handle_connection(socket&) {
  return verdict::proceed();
}

verdict handler::handle_data(std::string_view, socket&) {
  return verdict::proceed();
}

void handler::handle_close(socket&) {
}

void handler::handle_error(const caf::error&, socket&) {
}

void handler::handle_shutdown(socket&) {
}

void handler::handle_timeout(socket&) {
}

verdict handler::handle_continue(const caf::message&, socket&) {
  return verdict::proceed();
}

caf::message_handler handler::message_handlers(socket&) {
  return {};
}

void handler::apply(verdict v) {
  if (host_ != nullptr)
    host_->apply_verdict(std::move(v));
}

caf::event_based_actor* handler::self() const noexcept {
  return host_ != nullptr ? host_->actor() : nullptr;
}

std::string handler_type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name{
    abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free};
  return status == 0 && name ? std::string{name.get()} : std::string{type.name()};
}

} // namespace atl
