// Strict command-line parsing for Atoll's example programs, on top of CAF's
// option parser: integer values must be plain decimal numbers, nothing is
// left over, and CAF's scheduler settings stay within what runs. Uses CAF
// only (the supervision demo has no server).
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include <caf/all.hpp>

namespace example {

/// Writes `text` to standard error in one call (stdio's lock makes it
/// atomic), so that it never interleaves with the log and JSON telemetry
/// lines that other threads write meanwhile.
inline void say(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

/// The most worker threads an example accepts (`--scheduler.max-threads`).
constexpr int64_t max_scheduler_threads = 512;

/// Checks `text` as the value of an integer option of CAF type `type_name`
/// ("int32", "uint64", ...): decimal digits only, with a leading '-' for
/// signed types; no sign '+', blanks, prefixes ("0x"), exponents or
/// trailing characters. Returns the value in canonical form (CAF's own
/// parser would read "0x10" as 16 and "010" as 8), or nullopt after
/// setting `why`. Other types are not integer options: returned unchanged.
inline std::optional<std::string> canonical_integer(std::string_view type_name,
                                                    std::string_view text, std::string& why) {
  bool is_signed = type_name.substr(0, 3) == "int";
  auto bits_text = type_name.substr(is_signed ? 3 : 4);
  if ((!is_signed && type_name.substr(0, 4) != "uint") || bits_text.empty()
      || bits_text.find_first_not_of("0123456789") != std::string_view::npos)
    return std::string{text};
  int bits = 0;
  auto parsed = std::from_chars(bits_text.data(), bits_text.data() + bits_text.size(), bits);
  if (parsed.ec != std::errc{} || bits < 8 || bits > 64)
    return std::string{text};
  auto digits = text;
  bool negative = is_signed && !digits.empty() && digits.front() == '-';
  if (negative)
    digits.remove_prefix(1);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos) {
    why = std::string{"expected a "} + (is_signed ? "" : "non-negative ")
          + "decimal integer, got \"" + std::string{text} + "\"";
    return std::nullopt;
  }
  // The magnitude's limit: 2^(bits-1) for negative values, 2^(bits-1) - 1 or
  // 2^bits - 1 for positive ones.
  uint64_t all = bits == 64 ? std::numeric_limits<uint64_t>::max() : (uint64_t{1} << bits) - 1;
  uint64_t limit = is_signed ? all >> 1 : all;
  if (negative)
    limit += 1;
  uint64_t magnitude = 0;
  auto res = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude);
  if (res.ec != std::errc{} || magnitude > limit) {
    why = std::string{text} + " is out of range for " + std::string{type_name};
    return std::nullopt;
  }
  if (magnitude == 0)
    return std::string{"0"};
  return (negative ? "-" : "") + std::to_string(magnitude);
}

/// The name of `opt` as written on the command line ("--port").
inline std::string cli_name(const caf::config_option& opt) {
  std::string name = "--";
  if (!opt.has_flat_cli_name()) {
    name += std::string{opt.category().data(), opt.category().size()};
    name += '.';
  }
  name += std::string{opt.long_name().data(), opt.long_name().size()};
  return name;
}

/// Takes flag `opt` off `cleared` (a later "--name" wins over "=false").
inline void forget(std::vector<std::string>* cleared, const caf::config_option& opt) {
  if (cleared == nullptr)
    return;
  auto full = opt.full_name();
  cleared->erase(std::remove(cleared->begin(), cleared->end(),
                             std::string{full.data(), full.size()}),
                 cleared->end());
}

/// Checks every integer option value in `argv` the way CAF's parser finds
/// them ("--name=value", "--name VALUE", "-kVALUE", "-k VALUE"; a bare "--" is refused) and
/// returns the arguments with those values in canonical decimal form, or
/// nullopt after setting `why` to a message naming the option. Also refuses
/// a short option without its value at the end, which CAF ignores. A flag
/// (a boolean option) may be written "--name=true" (the same as "--name")
/// or "--name=false": CAF takes neither, so the first becomes "--name" and
/// the second is left out (with an earlier "--name") and its full name
/// added to `cleared` (which the caller sets to false before and after CAF
/// parsed the rest); any other value, or
/// "=false" without `cleared`, is refused.
inline std::optional<std::vector<std::string>>
strict_arguments(const caf::config_option_set& opts, int argc, char** argv, std::string& why,
                 std::vector<std::string>* cleared = nullptr) {
  std::vector<std::string> result;
  // flag_at[k]: the flag that result[k] sets ("--name", "-k"), else null.
  std::vector<const caf::config_option*> flag_at;
  auto push = [&](std::string arg, const caf::config_option* flag) {
    result.push_back(std::move(arg));
    flag_at.push_back(flag);
  };
  auto check = [&](const caf::config_option& opt, std::string_view value) {
    std::string problem;
    auto type = opt.type_name();
    auto canonical = canonical_integer({type.data(), type.size()}, value, problem);
    if (!canonical)
      why = cli_name(opt) + ": " + problem;
    return canonical;
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      // CAF would take what follows as left over and report the wrong
      // argument; the examples take no positional arguments at all.
      why = "-- is not accepted: the program takes options only (see --help)";
      return std::nullopt;
    }
    const caf::config_option* flag = nullptr;
    if (arg.compare(0, 2, "--") == 0) {
      auto eq = arg.find('=');
      if (eq != std::string::npos) {
        auto name = arg.substr(2, eq - 2);
        if (auto opt = opts.cli_long_name_lookup(name); opt && opt->is_flag()) {
          auto value = std::string_view{arg}.substr(eq + 1);
          if (value == "false" && cleared != nullptr) {
            auto full = opt->full_name();
            cleared->emplace_back(full.data(), full.size());
            // An earlier "--name" (in any spelling) is overruled: CAF must
            // not see it (it would show in --dump-config).
            for (size_t k = result.size(); k-- > 0;)
              if (flag_at[k] == opt) {
                result.erase(result.begin() + static_cast<std::ptrdiff_t>(k));
                flag_at.erase(flag_at.begin() + static_cast<std::ptrdiff_t>(k));
              }
            continue;
          }
          if (value != "true") {
            why = cli_name(*opt) + ": expected true or false, got \"" + std::string{value} + "\"";
            return std::nullopt;
          }
          arg = "--" + name;
          forget(cleared, *opt);
          flag = opt;
        } else if (opt && !opt->is_flag()) {
          auto value = check(*opt, std::string_view{arg}.substr(eq + 1));
          if (!value)
            return std::nullopt;
          arg = "--" + name + "=" + *value;
        }
      } else if (auto bare = opts.cli_long_name_lookup(std::string_view{arg}.substr(2));
                 bare && bare->is_flag()) { // "--name": a later one wins
        forget(cleared, *bare);
        flag = bare;
      } else if (auto opt = opts.cli_long_name_lookup(std::string_view{arg}.substr(2));
                 opt && !opt->is_flag()) { // "--name VALUE"
        if (i + 1 == argc) {
          why = arg + ": a value is missing";
          return std::nullopt;
        }
        auto value = check(*opt, argv[i + 1]);
        if (!value)
          return std::nullopt;
        arg += "=" + *value;
        ++i;
      }
    } else if (arg.size() >= 2 && arg[0] == '-') {
      if (auto opt = opts.cli_short_name_lookup(arg[1]); opt && !opt->is_flag()) {
        if (arg.size() == 2 && i + 1 == argc) { // CAF would ignore it
          why = arg + " (" + cli_name(*opt) + "): a value is missing";
          return std::nullopt;
        }
        if (arg.size() == 2) { // "-k VALUE"
          auto value = check(*opt, argv[i + 1]);
          if (!value)
            return std::nullopt;
          push(arg, nullptr);
          push(*value, nullptr);
          ++i;
          continue;
        }
        if (arg.size() > 2) { // "-kVALUE"
          auto value = check(*opt, std::string_view{arg}.substr(2));
          if (!value)
            return std::nullopt;
          arg = arg.substr(0, 2) + *value;
        }
      } else if (opt && opt->is_flag() && arg.size() == 2) { // "-k": a later one wins
        forget(cleared, *opt);
        flag = opt;
      }
    }
    push(std::move(arg), flag);
  }
  return result;
}

/// CAF's help text as the examples print it: to stdout, which CAF's own
/// descriptions of --help and --long-help call STDERR.
inline std::string corrected_help(std::string text) {
  for (std::string_view wrong : {" text to STDERR and exit", " to STDERR and exit"}) {
    for (auto at = text.find(wrong); at != std::string::npos; at = text.find(wrong, at))
      text.replace(at, wrong.size(), " and exit");
  }
  return text;
}

/// A command-line error of CAF's parser in words: "unknown option --x (see
/// --help)", "--host: a value is missing or empty", "--port: not a valid
/// value"; other errors as CAF renders them.
inline std::string describe_cli_error(const caf::error& err) {
  if (err.category() != caf::atom("parser"))
    return caf::to_string(err);
  std::string argument;
  if (err.context().match_elements<caf::config_value::dictionary>()) {
    const auto& context = err.context().get_as<caf::config_value::dictionary>(0);
    if (auto i = context.find("argument"); i != context.end())
      if (auto text = caf::get_if<std::string>(&i->second))
        argument = *text;
  }
  if (argument.empty())
    return caf::to_string(err);
  // "--name=value" or "-kVALUE".
  auto name = argument.compare(0, 2, "--") == 0 ? argument.substr(0, argument.find('='))
                                                 : argument.substr(0, 2);
  switch (static_cast<caf::pec>(err.code())) {
    case caf::pec::not_an_option:
      return "unknown option " + name + " (see --help)";
    case caf::pec::missing_argument:
      return name + ": a value is missing or empty";
    default:
      return name + ": not a valid value (" + caf::to_string(err) + ")";
  }
}

/// Checks that the integer setting `name` (e.g. "scheduler.max-threads"),
/// if set, lies within `min`..`max`; returns a message otherwise.
inline std::optional<std::string> check_setting_range(const caf::settings& content,
                                                      const char* name, int64_t min, int64_t max,
                                                      const std::string& range_text) {
  auto value = caf::get_if(&content, caf::string_view{name, std::strlen(name)});
  if (value == nullptr)
    return std::nullopt;
  auto number = caf::get_if<caf::config_value::integer>(value);
  if (number == nullptr || *number < min || *number > max)
    return std::string{"--"} + name + " must be " + range_text + ", got " + caf::to_string(*value);
  return std::nullopt;
}

/// Refuses CAF's settings of the scheduler that Atoll's scheduler, which
/// replaces CAF's, does not read (its policy, profiling and work-stealing
/// settings; CAF still parses them), so that no option silently does
/// nothing. Returns a message naming the first one set.
inline std::optional<std::string> check_unused_caf_settings(const caf::settings& content) {
  auto unused = [](const std::string& name) {
    return "--" + name + " is not used: Atoll's scheduler replaces CAF's (see --help for its settings)";
  };
  for (const char* name : {"scheduler.policy", "scheduler.profiling-output-file",
                           "scheduler.profiling-resolution", "scheduler.enable-profiling"})
    if (caf::get_if(&content, caf::string_view{name, std::strlen(name)}) != nullptr)
      return unused(name);
  if (auto group = caf::get_if<caf::settings>(&content, "work-stealing"); group && !group->empty())
    return unused("work-stealing." + group->begin()->first);
  return std::nullopt;
}

/// Refuses a scheduler whose workers need more file descriptors than the
/// process may still open (2 each: an epoll instance and an eventfd, plus
/// 32 for the rest of the start). Checked before the actor system exists,
/// because its constructor cannot report such a failure cleanly.
inline std::optional<std::string> check_fd_budget(const caf::settings& content) {
  int64_t threads = 0;
  if (auto value = caf::get_if<int64_t>(&content, "scheduler.max-threads"))
    threads = *value;
  if (threads <= 0)
    threads = std::max<int64_t>(std::thread::hardware_concurrency(), 1);
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY)
    return std::nullopt;
  int64_t open_now = 0;
  if (auto* dir = ::opendir("/proc/self/fd")) {
    while (auto* ent = ::readdir(dir))
      if (ent->d_name[0] != '.')
        ++open_now;
    ::closedir(dir);
  }
  auto need = 2 * threads + 32;
  auto limit = static_cast<int64_t>(lim.rlim_cur);
  if (open_now + need <= limit)
    return std::nullopt;
  return "cannot start the actor system: " + std::to_string(threads)
         + " worker threads (--scheduler.max-threads) need about " + std::to_string(need)
         + " file descriptors, and the process may open " + std::to_string(limit)
         + " (ulimit -n), " + std::to_string(open_now) + " of them open";
}

/// A terminate handler for the start of the actor system, a fallback behind
/// `check_fd_budget`: a scheduler that cannot start throws from the
/// `caf::actor_system` constructor, which is not exception safe (unwinding
/// it crashes, and by the time terminate runs the exception object may be
/// gone: UBSan saw an invalid one), so this only says what happened and
/// exits with code 1 instead of aborting.
[[noreturn]] inline void report_startup_failure() {
  static const char msg[] = "cannot start the actor system (its scheduler failed to start)\n";
  [[maybe_unused]] auto n = ::write(2, msg, sizeof(msg) - 1);
  std::_Exit(EXIT_FAILURE);
}

/// An actor system configuration whose command line is parsed strictly (see
/// `parse_command_line`). Derive from it and add options as usual.
class strict_config : public caf::actor_system_config {
public:
  /// Declares the settings of Atoll's scheduler that CAF does not know.
  strict_config() {
    opt_group{custom_options_, "scheduler"}.add<int64_t>(
      "release-memory-after",
      "give free heap memory back to the OS once the workers rested this many ms after work "
      "(default: 100; 0: never)");
    opt_group{custom_options_, "scheduler"}.add<int64_t>(
      "spinning-workers",
      "workers that may busy-wait at once when out of work, before they sleep "
      "(default: all; 0: none)");
    opt_group{custom_options_, "scheduler"}.add<bool>(
      "compaction",
      "run a light load on fewer workers, adding workers as the load grows "
      "(default: true)");
  }

  /// Parses the command line: integer values must be decimal (see
  /// `canonical_integer`), no argument may be left over, CAF's scheduler
  /// settings must be usable (`scheduler.max-threads` within
  /// 1..`max_scheduler_threads`, `scheduler.max-throughput` at least 1), and
  /// `check_options` must pass. Returns false (and sets `exit_code`) when
  /// the program should exit right away: after printing the problem to
  /// stderr (exit code 1), or after `--help` (exit code 0).
  bool parse_command_line(int argc, char** argv, int& exit_code) {
    exit_code = EXIT_FAILURE;
    std::string why;
    std::vector<std::string> cleared;
    auto args = strict_arguments(custom_options_, argc, argv, why, &cleared);
    if (!args) {
      std::cerr << "invalid options: " << why << '\n';
      return false;
    }
    // "=false" is set before CAF parses (so that --dump-config, which CAF
    // prints while parsing, shows it; a config file's value for the flag
    // would still show there) and again after (over a config file).
    for (auto& name : cleared)
      set(name, false);
    // CAF prints --help to std::cout while it parses, describing its own
    // flags as printing "to STDERR": caught here and corrected.
    std::ostringstream caf_help;
    auto* out = std::cout.rdbuf(caf_help.rdbuf());
    auto err = parse(std::move(*args));
    std::cout.rdbuf(out);
    std::cout << corrected_help(caf_help.str());
    if (err) {
      std::cerr << "invalid options: " << describe_cli_error(err) << '\n';
      return false;
    }
    for (auto& name : cleared)
      set(name, false);
    if (cli_helptext_printed) {
      if (caf::get_or(content, "help", false) || caf::get_or(content, "long-help", false))
        std::cout << "limits (checked at start):\n"
                   "  integer values             : decimal digits, with a leading '-' only\n"
                   "                               where the option allows negative values\n"
                   "  --scheduler.max-threads    : worker threads, 1.."
                << max_scheduler_threads
                << " (default: one per core;\n"
                   "                               2 file descriptors each)\n"
                   "  --scheduler.max-throughput : messages per actor run, at least 1\n"
                   "  --scheduler.release-memory-after : ms, 0..3600000 (0: never)\n"
                   "  --scheduler.spinning-workers : 0.."
                << max_scheduler_threads << " (default: all workers)\n"
                   "  --scheduler.compaction     : true or false (default: true)\n"
                << std::flush;
      exit_code = EXIT_SUCCESS;
      return false;
    }
    if (!remainder.empty()) {
      std::cerr << "invalid options: unexpected argument \"" << remainder.front() << "\"\n";
      return false;
    }
    auto problem = check_setting_range(content, "scheduler.max-threads", 1, max_scheduler_threads,
                                       "within 1.." + std::to_string(max_scheduler_threads));
    if (!problem)
      problem = check_setting_range(content, "scheduler.max-throughput", 1,
                                    std::numeric_limits<int64_t>::max(), "at least 1");
    if (!problem)
      problem = check_setting_range(content, "scheduler.release-memory-after", 0, 3'600'000,
                                    "within 0..3600000 (ms)");
    if (!problem)
      problem = check_setting_range(content, "scheduler.spinning-workers", 0,
                                    max_scheduler_threads,
                                    "within 0.." + std::to_string(max_scheduler_threads));
    if (!problem)
      problem = check_unused_caf_settings(content);
    if (!problem)
      problem = check_options();
    if (!problem)
      problem = check_fd_budget(content);
    if (problem) {
      std::cerr << "invalid options: " << *problem << '\n';
      return false;
    }
    exit_code = EXIT_SUCCESS;
    return true;
  }

protected:
  /// The program's own checks after parsing; a message names the option.
  virtual std::optional<std::string> check_options() const {
    return std::nullopt;
  }
};

} // namespace example
