#include "atoll/handlers/handler.hpp"

#include "atoll/handlers/detail/handler_host.hpp"

#include <cstdlib>
#include <memory>
#include <string_view>

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
  if (status != 0 || !name)
    return type.name();
  // "(anonymous namespace)::" says nothing to a reader of logs and trees.
  std::string result{name.get()};
  constexpr std::string_view anonymous = "(anonymous namespace)::";
  for (auto pos = result.find(anonymous); pos != std::string::npos;
       pos = result.find(anonymous, pos))
    result.erase(pos, anonymous.size());
  return result;
}

} // namespace atl
