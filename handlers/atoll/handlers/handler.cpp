#include "atoll/handlers/handler.hpp"

#include "atoll/handlers/detail/handler_host.hpp"

#include <cstdlib>
#include <memory>

#include <cxxabi.h>

namespace atl {

detail::handler_host::~handler_host() = default;

handler::~handler() = default;

verdict handler::handle_continue(const caf::message&, socket&) {
  return verdict::proceed();
}

std::string handler_type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name{
    abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free};
  return status == 0 && name ? std::string{name.get()} : std::string{type.name()};
}

} // namespace atl
