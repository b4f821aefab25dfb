// libFuzzer target for the strict command-line parsing of the example
// programs (examples/example_options.hpp): `canonical_integer` and
// `strict_arguments`, then CAF's own parser on what they let through, as
// `strict_config::parse_command_line` runs them.
//
// Input: the first byte picks a CAF integer type name for a direct
// `canonical_integer` check of the rest as text; the rest, split at NUL
// bytes, is also an argument vector (at most 16 arguments) for an option set
// like the examples' (`--port,p` uint16, `--num-acceptors,a` int32,
// `--read-timeout` int64, `--max-bytes` uint64, `--level` int8,
// `--host,H` string, `--verbose,v` flag). Checked:
//
// canonical_integer
// - accepts exactly the texts that are an optional '-' (signed types only)
//   and decimal digits whose value fits the type, as decided here by
//   comparing digit strings (no arithmetic shared with the code);
// - returns the value in canonical form: no leading zeros, no "-0", the
//   same value as the text; and the canonical form is a fixed point;
// - a refusal has a message; other type names pass the text through.
// strict_arguments
// - a refusal names an option (the message starts with '-');
// - an accepted vector has every integer option's value (in every
//   spelling: --name=V with any name CAF resolves to the option, such as
//   "global.port" or "caf#port", --name V, -kV, -k V) in canonical form, and
//   once CAF has parsed it, every integer setting is the last such value.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "example_options.hpp"

#include "fuzz_check.hpp"

namespace {

struct int_type {
  const char* name;
  bool is_signed;
  const char* max;     // largest value, in decimal
  const char* min_abs; // magnitude of the smallest value (signed types)
};

constexpr int_type types[] = {
  {"int8", true, "127", "128"},
  {"uint8", false, "255", "0"},
  {"int16", true, "32767", "32768"},
  {"uint16", false, "65535", "0"},
  {"int32", true, "2147483647", "2147483648"},
  {"uint32", false, "4294967295", "0"},
  {"int64", true, "9223372036854775807", "9223372036854775808"},
  {"uint64", false, "18446744073709551615", "0"},
};

std::string_view strip_zeros(std::string_view digits) {
  while (digits.size() > 1 && digits.front() == '0')
    digits.remove_prefix(1);
  return digits;
}

/// a <= b for decimal digit strings without leading zeros.
bool not_above(std::string_view a, std::string_view b) {
  return a.size() != b.size() ? a.size() < b.size() : a <= b;
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

/// The canonical form of `text` as an integer of type `t`, decided here.
std::optional<std::string> expected_canonical(const int_type& t, std::string_view text) {
  bool negative = t.is_signed && !text.empty() && text.front() == '-';
  auto digits = negative ? text.substr(1) : text;
  if (!all_digits(digits))
    return std::nullopt;
  auto value = strip_zeros(digits);
  if (!not_above(value, negative ? t.min_abs : t.max))
    return std::nullopt;
  if (value == "0")
    return std::string{"0"};
  return (negative ? "-" : "") + std::string{value};
}

void check_canonical(const int_type& t, std::string_view text) {
  std::string why;
  auto got = example::canonical_integer(t.name, text, why);
  auto want = expected_canonical(t, text);
  FUZZ_CHECK(got == want);
  if (!got) {
    FUZZ_CHECK(!why.empty());
    return;
  }
  std::string again_why;
  FUZZ_CHECK(example::canonical_integer(t.name, *got, again_why) == got);
}

/// The option set of the target, like an example's.
caf::config_option_set make_options() {
  caf::config_option_set opts;
  opts.add<uint16_t>("global", "port,p", "port")
    .add<int32_t>("global", "num-acceptors,a", "acceptors")
    .add<int64_t>("global", "read-timeout", "timeout")
    .add<uint64_t>("global", "max-bytes", "bytes")
    .add<int8_t>("global", "level", "level")
    .add<std::string>("global", "host,H", "host")
    .add<bool>("global", "verbose,v", "flag");
  return opts;
}

/// The integer options: the long name, the short one (or 0) and the type.
struct int_option {
  const char* name;
  char short_name;
  const int_type* type;
};

constexpr int_option int_options[] = {
  {"port", 'p', &types[3]},         {"num-acceptors", 'a', &types[4]},
  {"read-timeout", 0, &types[6]},   {"max-bytes", 0, &types[7]},
  {"level", 0, &types[0]},
};

/// The integer option `arg` sets with an attached value ("--NAME=V", NAME
/// found as CAF finds it: "port", "global.port", "caf#port", ...; or "-pV"),
/// or nullptr.
const int_option* attached(const caf::config_option_set& opts, std::string_view arg,
                           std::string_view& value) {
  if (arg.substr(0, 2) == "--") {
    auto eq = arg.find('=');
    if (eq == std::string_view::npos)
      return nullptr;
    auto found = opts.cli_long_name_lookup(std::string{arg.substr(2, eq - 2)});
    if (found == nullptr || found->is_flag())
      return nullptr;
    auto long_name = found->long_name();
    for (const auto& o : int_options)
      if (std::string_view{long_name.data(), long_name.size()} == o.name) {
        value = arg.substr(eq + 1);
        return &o;
      }
    return nullptr;
  }
  for (const auto& o : int_options)
    if (o.short_name != 0 && arg.size() > 2 && arg[0] == '-' && arg[1] == o.short_name) {
      value = arg.substr(2);
      return &o;
    }
  return nullptr;
}

/// The integer option of short name `k`, or nullptr.
const int_option* short_option(char k) {
  for (const auto& o : int_options)
    if (o.short_name != 0 && o.short_name == k)
      return &o;
  return nullptr;
}

void check_arguments(const std::vector<std::string>& args) {
  static const auto opts = make_options();
  std::vector<char*> argv;
  std::string program = "fuzz";
  argv.push_back(program.data());
  auto copies = args;
  for (auto& a : copies)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string why;
  auto out = example::strict_arguments(opts, static_cast<int>(args.size() + 1), argv.data(), why);
  if (!out) {
    FUZZ_CHECK(!why.empty() && why.front() == '-');
    return;
  }
  caf::settings content;
  auto res = opts.parse(content, *out);
  // Every integer value in canonical form, in each spelling; when CAF
  // accepts the vector, it stores the last one of each option.
  std::map<const int_option*, std::string> last;
  for (size_t i = 0; i < out->size(); ++i) {
    const auto& arg = (*out)[i];
    std::string_view value;
    const int_option* o = nullptr;
    if (arg.size() == 2 && arg[0] == '-' && (arg[1] == 'p' || arg[1] == 'a' || arg[1] == 'H')) {
      // "-k V": strict_arguments refuses a missing value.
      FUZZ_CHECK(i + 1 < out->size());
      o = short_option(arg[1]);
      value = (*out)[++i];
    } else {
      o = attached(opts, arg, value);
    }
    if (o == nullptr)
      continue;
    FUZZ_CHECK(expected_canonical(*o->type, value) == std::string{value});
    last[o] = std::string{value};
  }
  if (res.first != caf::pec::success)
    return;
  for (const auto& [o, value] : last) {
    auto stored = caf::get_if(&content, caf::string_view{o->name, std::strlen(o->name)});
    FUZZ_CHECK(stored != nullptr);
    auto number = caf::get_if<caf::config_value::integer>(stored);
    FUZZ_CHECK(number != nullptr);
    FUZZ_CHECK(std::to_string(*number) == value
               || std::to_string(static_cast<uint64_t>(*number)) == value);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 1024)
    return 0;
  std::string_view rest{reinterpret_cast<const char*>(data + 1), size - 1};
  check_canonical(types[data[0] % 8], rest);
  // Type names that are not integer types pass the text through.
  std::string why;
  FUZZ_CHECK(example::canonical_integer("string", rest, why) == std::string{rest});
  std::vector<std::string> args;
  size_t start = 0;
  while (args.size() < 16 && start <= rest.size()) {
    auto nul = rest.find('\0', start);
    if (nul == std::string_view::npos)
      nul = rest.size();
    args.emplace_back(rest.substr(start, nul - start));
    start = nul + 1;
  }
  check_arguments(args);
  return 0;
}
