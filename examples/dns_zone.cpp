// dns_zone: zone file loading (ldns parses each record) and query answering (a small wire
// parser of our own for the query, ldns for building and compressing the reply).
//
// Thread safety: after `load`, nothing is written. `answer` only reads the index (standard
// containers) and the stored ldns records: ldns_rr_clone, ldns_rdf_data/size and the ldns_pkt
// calls all work on the caller's objects, and ldns_pkt2wire keeps its compression table local
// to the call. No ldns call made while answering touches global state (ldns_pkt_new, unlike
// ldns_pkt_query_new, draws no random ID).
#include "dns_zone.hpp"

#include "ldns_cxx.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <new>
#include <optional>
#include <sstream>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace example {

namespace {

// -- ldns ownership ------------------------------------------------------------------------------

/// Frees an ldns record with everything it owns.
struct rr_free {
  void operator()(ldns_rr* rr) const noexcept {
    ldns_rr_free(rr);
  }
};

/// Frees an ldns rdata field with its data.
struct rdf_free {
  void operator()(ldns_rdf* rdf) const noexcept {
    ldns_rdf_deep_free(rdf);
  }
};

/// Frees an ldns packet with all of its records.
struct pkt_free {
  void operator()(ldns_pkt* pkt) const noexcept {
    ldns_pkt_free(pkt);
  }
};

/// Frees memory that ldns allocated for the caller (LDNS_FREE is free()).
struct c_free {
  void operator()(void* p) const noexcept {
    std::free(p);
  }
};

/// Frees an ldns buffer with its data.
struct buffer_free {
  void operator()(ldns_buffer* b) const noexcept {
    ldns_buffer_free(b);
  }
};

using rr_ptr = std::unique_ptr<ldns_rr, rr_free>;
using rdf_ptr = std::unique_ptr<ldns_rdf, rdf_free>;
using pkt_ptr = std::unique_ptr<ldns_pkt, pkt_free>;

/// Takes ownership of a string that ldns allocated ("" for null).
std::string take_str(char* s) {
  std::unique_ptr<char, c_free> owned(s);
  return s ? std::string(s) : std::string();
}

// -- DNS constants -------------------------------------------------------------------------------

constexpr uint16_t type_ns = 2;
constexpr uint16_t type_cname = 5;
constexpr uint16_t type_soa = 6;
constexpr uint16_t type_mx = 15;
constexpr uint16_t type_a = 1;
constexpr uint16_t type_aaaa = 28;
constexpr uint16_t type_opt = 41;
constexpr uint16_t type_ixfr = 251;
constexpr uint16_t type_axfr = 252;
constexpr uint16_t type_any = 255;
constexpr uint16_t class_in = 1;
constexpr uint16_t class_any = 255;

constexpr uint16_t rcode_formerr = 1;
constexpr uint16_t rcode_nxdomain = 3;
constexpr uint16_t rcode_notimp = 4;
constexpr uint16_t rcode_refused = 5;
constexpr uint16_t rcode_badvers = 16; // extended: the upper 8 bits go into the OPT record

constexpr size_t header_size = 12;
constexpr size_t max_name_size = 255;
constexpr size_t classic_udp_limit = 512;
constexpr size_t max_udp_limit = 4096;
constexpr uint16_t advertised_udp_size = 1232;
constexpr size_t max_cname_hops = 8;
constexpr uint32_t default_ttl = 3600; // for records before any $TTL that give no TTL

// -- names ---------------------------------------------------------------------------------------

/// The lookup key of a name: its uncompressed wire form with ASCII letters lowercased (length
/// bytes are at most 63, below 'A', so lowercasing the whole string is safe).
std::string key_of(const uint8_t* data, size_t size) {
  std::string key(reinterpret_cast<const char*>(data), size);
  for (auto& c : key)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return key;
}

/// The lookup key of an ldns domain name.
std::string key_of(const ldns_rdf* dname) {
  return key_of(ldns_rdf_data(dname), ldns_rdf_size(dname));
}

/// The offset of the label after the one at `pos` in the wire name `name` (name.size() if the
/// name is malformed or `pos` is the root label).
size_t next_label(const std::string& name, size_t pos) {
  if (pos >= name.size() || name[pos] == 0)
    return name.size();
  size_t next = pos + 1 + static_cast<uint8_t>(name[pos]);
  return next < name.size() ? next : name.size();
}

/// Whether the wire name `name` is `zone` or below it (both keys), on label boundaries.
bool is_at_or_below(const std::string& name, const std::string& zone) {
  for (size_t pos = 0; pos < name.size(); pos = next_label(name, pos)) {
    if (name.size() - pos < zone.size())
      return false;
    if (name.size() - pos == zone.size())
      return name.compare(pos, std::string::npos, zone) == 0;
  }
  return false;
}

/// The presentation form of an ldns domain name ("www.example.test.").
std::string show_name(const ldns_rdf* dname) {
  return take_str(ldns_rdf2str(dname));
}

/// The domain name in rdata field `index` of `rr`, or null if it has none there.
const ldns_rdf* dname_field(const ldns_rr* rr, size_t index) {
  if (ldns_rr_rd_count(rr) <= index)
    return nullptr;
  const ldns_rdf* rdf = ldns_rr_rdf(rr, index);
  return rdf && ldns_rdf_get_type(rdf) == LDNS_RDF_TYPE_DNAME ? rdf : nullptr;
}

/// The record's type as a number.
uint16_t type_of(const ldns_rr* rr) {
  return static_cast<uint16_t>(ldns_rr_get_type(rr));
}

// -- zone file reading ---------------------------------------------------------------------------

/// One logical line of a zone file: comments and parentheses removed, continuation lines
/// joined with spaces, leading white space kept (it means "same owner as before").
struct logical_line {
  std::string text;
  int line = 0;
};

/// A zone file error: the line it is about (0 for none) and what is wrong.
struct load_error {
  int line = 0;
  std::string what;
};

/// Whether `text` has anything but white space.
bool has_content(const std::string& text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return !std::isspace(static_cast<unsigned char>(c)); });
}

/// Splits `content` into logical lines (RFC 1035 section 5.1: `;` comments, `(...)` spanning
/// lines, quoted strings, backslash escapes). Fails on unbalanced parentheses or quotes.
bool split_lines(const std::string& content, std::vector<logical_line>& out, load_error& err) {
  int line = 1;
  int depth = 0;
  int paren_line = 0;
  bool quoted = false;
  int quote_line = 0;
  logical_line cur{{}, 1};
  auto flush = [&] {
    if (has_content(cur.text))
      out.push_back(std::move(cur));
    cur = logical_line{{}, line};
  };
  for (size_t i = 0; i < content.size(); ++i) {
    char c = content[i];
    if (c == '\0') {
      err = {line, "NUL byte in zone file"};
      return false;
    }
    if (c == '\\' && i + 1 < content.size() && content[i + 1] != '\n') {
      cur.text += c;
      cur.text += content[++i];
      continue;
    }
    if (quoted) {
      if (c == '\n') {
        err = {quote_line, "quoted string not closed on its line"};
        return false;
      }
      if (c == '"')
        quoted = false;
      cur.text += c;
      continue;
    }
    switch (c) {
      case '"':
        quoted = true;
        quote_line = line;
        cur.text += c;
        break;
      case ';':
        while (i + 1 < content.size() && content[i + 1] != '\n')
          ++i;
        break;
      case '(':
        if (depth++ == 0)
          paren_line = line;
        cur.text += ' ';
        break;
      case ')':
        if (depth == 0) {
          err = {line, "')' without a matching '('"};
          return false;
        }
        --depth;
        cur.text += ' ';
        break;
      case '\r': cur.text += ' '; break;
      case '\n':
        ++line;
        if (depth > 0)
          cur.text += ' ';
        else
          flush();
        break;
      default: cur.text += c;
    }
  }
  if (depth > 0) {
    err = {paren_line, "'(' not closed before the end of the file"};
    return false;
  }
  flush();
  return true;
}

/// The white-space separated words of `text`.
std::vector<std::string> words_of(const std::string& text) {
  std::istringstream in(text);
  return {std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
}

/// Case-insensitive ASCII equality.
bool iequals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

/// `text` without surrounding white space, cut to a readable length for error messages.
std::string excerpt(const std::string& text) {
  auto words = words_of(text);
  std::string out;
  for (auto& w : words)
    out += (out.empty() ? "" : " ") + w;
  constexpr size_t max_len = 60;
  if (out.size() > max_len)
    out = out.substr(0, max_len) + "...";
  return out;
}

/// The largest TTL (RFC 2181 section 8: 31 bits).
constexpr uint64_t max_ttl = 0x7fffffff;

/// `word` as a TTL (seconds, or numbers with the units s, m, h, d, w, like 1h30m): its value,
/// saturated above `max_ttl` (ldns would wrap it around 2^32); nothing if it is not wholly one.
std::optional<uint64_t> ttl_value(const std::string& word) {
  if (word.empty() || !std::isdigit(static_cast<unsigned char>(word[0])))
    return std::nullopt;
  uint64_t total = 0;
  uint64_t number = 0;
  bool in_number = false;
  for (char c : word) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      number = std::min<uint64_t>(number * 10 + static_cast<uint64_t>(c - '0'), max_ttl + 1);
      in_number = true;
      continue;
    }
    uint64_t unit = 0;
    switch (std::tolower(static_cast<unsigned char>(c))) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      case 'w': unit = 604800; break;
      default: return std::nullopt;
    }
    if (!in_number)
      return std::nullopt;
    total = std::min(total + number * unit, max_ttl + 1);
    number = 0;
    in_number = false;
  }
  return std::min(total + number, max_ttl + 1);
}

/// What is wrong with the TTL among `words` (a record line), or nothing. ldns reads the word
/// after the owner (the first word if `owner_given` is false) as the TTL when it starts with a
/// digit, up to its first character that is no part of a time value, and wraps large values.
std::optional<std::string> ttl_problem(const std::vector<std::string>& words, bool owner_given) {
  size_t at = owner_given ? 1 : 0;
  if (at >= words.size() || !std::isdigit(static_cast<unsigned char>(words[at][0])))
    return std::nullopt;
  auto value = ttl_value(words[at]);
  if (!value)
    return "TTL '" + words[at] + "' is not a time value (like 3600 or 1h30m)";
  if (*value > max_ttl)
    return "TTL '" + words[at] + "' is out of range (at most 2147483647 seconds, RFC 2181)";
  return std::nullopt;
}

/// Reads the regular file at `path` into `out`; otherwise what is wrong. The type is checked on
/// the opened file (no race with a rename), opened without blocking: a FIFO would block the start
/// (and its signals) until a writer came, a device could be read forever (/dev/zero).
std::optional<std::string> read_regular_file(const std::string& path, std::string& out) {
  auto system_error = [](int code) { return std::generic_category().message(code); };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return "cannot open zone file: " + system_error(errno);
  struct fd_closer {
    int fd;
    ~fd_closer() {
      ::close(fd);
    }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return "cannot read zone file: " + system_error(errno);
  if (S_ISDIR(st.st_mode))
    return std::string{"is a directory, not a zone file"};
  if (!S_ISREG(st.st_mode))
    return std::string{"is not a regular file"};
  char buf[65536];
  for (;;) {
    auto n = ::read(fd, buf, sizeof(buf));
    if (n == 0)
      return std::nullopt;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return "cannot read zone file: " + system_error(errno);
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

/// A record read from the file and the line it starts on.
struct parsed_record {
  rr_ptr rr;
  int line = 0;
};

/// Parses the logical lines of a zone file into records, applying $ORIGIN and $TTL.
bool parse_records(const std::vector<logical_line>& lines, const std::string& default_origin,
                   std::vector<parsed_record>& out, load_error& err) {
  rdf_ptr origin;
  if (!default_origin.empty()) {
    std::string name = default_origin;
    if (!ldns_dname_str_absolute(name.c_str()))
      name += '.';
    origin.reset(ldns_dname_new_frm_str(name.c_str()));
    if (!origin) {
      err = {0, "invalid default origin '" + default_origin + "'"};
      return false;
    }
  }
  rdf_ptr prev; // the previous owner, for records that omit theirs
  uint32_t ttl = default_ttl;
  for (const auto& ll : lines) {
    if (ll.text[0] == '$') {
      auto words = words_of(ll.text);
      if (iequals(words[0], "$ORIGIN")) {
        if (words.size() != 2) {
          err = {ll.line, "$ORIGIN takes exactly one domain name"};
          return false;
        }
        rdf_ptr name(ldns_dname_new_frm_str(words[1].c_str()));
        if (!name) {
          err = {ll.line, "invalid domain name '" + words[1] + "' in $ORIGIN"};
          return false;
        }
        if (!ldns_dname_str_absolute(words[1].c_str())) {
          if (!origin) {
            err = {ll.line, "relative $ORIGIN '" + words[1] + "' but no origin to append it to"};
            return false;
          }
          if (ldns_dname_cat(name.get(), origin.get()) != LDNS_STATUS_OK) {
            err = {ll.line, "$ORIGIN '" + words[1] + "' makes a name that is too long"};
            return false;
          }
        }
        origin = std::move(name);
      } else if (iequals(words[0], "$TTL")) {
        const char* end = nullptr;
        uint32_t value = 0;
        if (words.size() == 2 && std::isdigit(static_cast<unsigned char>(words[1][0])))
          value = ldns_str2period(words[1].c_str(), &end);
        if (!end || *end != '\0') {
          err = {ll.line, "$TTL takes one time value (like 3600 or 1h30m)"};
          return false;
        }
        if (auto why = ttl_problem({words[1]}, false)) {
          err = {ll.line, "$TTL: " + *why};
          return false;
        }
        ttl = value;
      } else if (iequals(words[0], "$INCLUDE")) {
        err = {ll.line, "$INCLUDE is not supported"};
        return false;
      } else {
        err = {ll.line, "unknown directive '" + words[0] + "'"};
        return false;
      }
      continue;
    }
    if (!origin) {
      // No origin yet: ldns would silently make relative names absolute under the root, so
      // accept only an absolute owner here, which then becomes the origin.
      auto words = words_of(ll.text);
      bool owner_given = !std::isspace(static_cast<unsigned char>(ll.text[0]));
      if (!owner_given || !ldns_dname_str_absolute(words[0].c_str())) {
        err = {ll.line, "no origin for relative names: add $ORIGIN or give a default origin"};
        return false;
      }
      origin.reset(ldns_dname_new_frm_str(words[0].c_str()));
      if (!origin) {
        err = {ll.line, "invalid owner name '" + words[0] + "'"};
        return false;
      }
    }
    if (auto why = ttl_problem(words_of(ll.text),
                                    !std::isspace(static_cast<unsigned char>(ll.text[0])))) {
      err = {ll.line, *why + ", in '" + excerpt(ll.text) + "'"};
      return false;
    }
    ldns_rr* raw = nullptr;
    ldns_rdf* prev_raw = prev.release();
    ldns_status status = ldns_rr_new_frm_str(&raw, ll.text.c_str(), ttl, origin.get(), &prev_raw);
    prev.reset(prev_raw);
    rr_ptr rr(raw);
    if (status != LDNS_STATUS_OK || !rr) {
      err = {ll.line,
             std::string(ldns_get_errorstr_by_id(status)) + " in '" + excerpt(ll.text) + "'"};
      return false;
    }
    if (type_of(rr.get()) == 0) {
      // ldns turns an unknown type mnemonic into TYPE0 instead of failing.
      err = {ll.line, "unknown record type in '" + excerpt(ll.text) + "'"};
      return false;
    }
    if (ldns_rr_get_class(rr.get()) != LDNS_RR_CLASS_IN) {
      err = {ll.line, "only class IN is supported, in '" + excerpt(ll.text) + "'"};
      return false;
    }
    if (type_of(rr.get()) == type_opt) {
      err = {ll.line, "OPT is not a zone record"};
      return false;
    }
    out.push_back({std::move(rr), ll.line});
  }
  return true;
}

// -- query parsing -------------------------------------------------------------------------------

/// What the parser learnt from a query datagram.
struct query_info {
  uint16_t id = 0;
  uint16_t opcode = 0;
  bool rd = false;
  uint16_t qdcount = 0;
  bool question_ok = false; ///< The first question parsed.
  std::string qname;        ///< Uncompressed wire form, case as sent.
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  bool well_formed = false; ///< The whole datagram parsed, with nothing left over.
  bool edns = false;        ///< A valid OPT record was seen.
  uint16_t udp_size = 0;
  uint8_t edns_version = 0;
};

/// Bounds-checked reading of a DNS message.
class wire_reader {
public:
  /// Reads `msg` from offset `pos`.
  wire_reader(std::string_view msg, size_t pos) : msg_(msg), pos_(pos) {}

  /// Reads a big-endian 16-bit number.
  bool u16(uint16_t& out) {
    if (msg_.size() - pos_ < 2)
      return false;
    out = static_cast<uint16_t>(byte(pos_) << 8 | byte(pos_ + 1));
    pos_ += 2;
    return true;
  }

  /// Reads a big-endian 32-bit number.
  bool u32(uint32_t& out) {
    uint16_t hi = 0;
    uint16_t lo = 0;
    if (!u16(hi) || !u16(lo))
      return false;
    out = static_cast<uint32_t>(hi) << 16 | lo;
    return true;
  }

  /// Skips `n` bytes.
  bool skip(size_t n) {
    if (msg_.size() - pos_ < n)
      return false;
    pos_ += n;
    return true;
  }

  /// Reads a domain name, following compression pointers (which must point backwards, past the
  /// header); stores it uncompressed in `out`.
  bool name(std::string& out) {
    out.clear();
    size_t p = pos_;
    bool jumped = false;
    for (size_t jumps = 0;;) {
      if (p >= msg_.size())
        return false;
      uint8_t len = byte(p);
      if ((len & 0xC0) == 0xC0) {
        if (p + 1 >= msg_.size())
          return false;
        size_t target = static_cast<size_t>(len & 0x3F) << 8 | byte(p + 1);
        if (target >= p || target < header_size || ++jumps > max_name_size)
          return false;
        if (!jumped)
          pos_ = p + 2;
        jumped = true;
        p = target;
        continue;
      }
      if (len & 0xC0) // 0x40 and 0x80: extended and reserved label types
        return false;
      if (out.size() + 1 + len > max_name_size)
        return false;
      if (len == 0) {
        out.push_back('\0');
        if (!jumped)
          pos_ = p + 1;
        return true;
      }
      if (msg_.size() - p < 1u + len)
        return false;
      out.append(msg_.substr(p, 1u + len));
      p += 1u + len;
    }
  }

  /// Bytes not read yet.
  size_t remaining() const {
    return msg_.size() - pos_;
  }

  /// The current offset.
  size_t pos() const {
    return pos_;
  }

private:
  uint8_t byte(size_t at) const {
    return static_cast<uint8_t>(msg_[at]);
  }

  std::string_view msg_;
  size_t pos_;
};

/// Checks that `rdata` is a sequence of EDNS options (code, length, data).
bool valid_options(std::string_view rdata) {
  wire_reader r(rdata, 0);
  while (r.remaining() > 0) {
    uint16_t code = 0;
    uint16_t len = 0;
    if (!r.u16(code) || !r.u16(len) || !r.skip(len))
      return false;
  }
  return true;
}

/// Parses `msg`. Returns false when it must go unanswered; otherwise fills `q` as far as the
/// datagram parses (`q.well_formed` tells whether all of it did).
bool parse_query(std::string_view msg, query_info& q) {
  if (msg.size() < header_size)
    return false;
  wire_reader r(msg, 0);
  uint16_t flags = 0;
  uint16_t counts[4] = {};
  r.u16(q.id);
  r.u16(flags);
  for (auto& c : counts)
    r.u16(c);
  if (flags & 0x8000)
    return false; // a response: answering it could start a loop between servers
  q.opcode = static_cast<uint16_t>((flags >> 11) & 0xF);
  q.rd = (flags & 0x0100) != 0;
  q.qdcount = counts[0];
  std::string name;
  for (uint16_t i = 0; i < counts[0]; ++i) {
    uint16_t qtype = 0;
    uint16_t qclass = 0;
    if (!r.name(name) || !r.u16(qtype) || !r.u16(qclass))
      return true;
    if (i == 0) {
      q.qname = name;
      q.qtype = qtype;
      q.qclass = qclass;
      q.question_ok = true;
    }
  }
  size_t records = size_t{counts[1]} + counts[2] + counts[3];
  size_t first_additional = size_t{counts[1]} + counts[2];
  for (size_t i = 0; i < records; ++i) {
    uint16_t type = 0;
    uint16_t rclass = 0;
    uint32_t ttl = 0;
    uint16_t rdlength = 0;
    if (!r.name(name) || !r.u16(type) || !r.u16(rclass) || !r.u32(ttl) || !r.u16(rdlength))
      return true;
    size_t rdata_at = r.pos();
    if (!r.skip(rdlength))
      return true;
    if (type == type_opt) {
      // RFC 6891 6.1.1: one OPT at most, owned by the root, in the additional section.
      if (q.edns || i < first_additional || name != std::string(1, '\0') ||
          !valid_options(msg.substr(rdata_at, rdlength)))
        return true;
      q.edns = true;
      q.udp_size = rclass;
      q.edns_version = static_cast<uint8_t>(ttl >> 16);
    }
  }
  q.well_formed = r.remaining() == 0;
  return true;
}

// -- replies -------------------------------------------------------------------------------------

/// Everything a reply is made of, before it is rendered to the size limit.
struct reply_plan {
  uint16_t id = 0;
  uint16_t opcode = 0;
  bool rd = false;
  bool aa = false;
  uint16_t rcode = 0; ///< Up to 12 bits: the upper 8 need EDNS.
  bool question = false;
  std::string qname;
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  bool edns = false;
  std::vector<const ldns_rr*> answer;
  std::vector<const ldns_rr*> authority;
  std::vector<const ldns_rr*> additional;
};

/// Adds a copy of `rr` to `section` of `pkt`; false if out of memory.
bool push_copy(ldns_pkt* pkt, ldns_pkt_section section, const ldns_rr* rr) {
  rr_ptr copy(ldns_rr_clone(rr));
  if (!copy || !ldns_pkt_push_rr(pkt, section, copy.get()))
    return false;
  copy.release(); // the packet owns it now
  return true;
}

/// The wire form of `plan` with its first `answers` answer records, the authority and
/// additional sections if asked for, and the TC bit as given.
std::optional<std::string> serialize(const reply_plan& plan, size_t answers, bool authority,
                                     bool additional, bool tc) {
  pkt_ptr pkt(ldns_pkt_new());
  if (!pkt)
    return std::nullopt;
  if (plan.question) {
    rr_ptr q(ldns_rr_new());
    if (!q)
      return std::nullopt;
    ldns_rdf* owner =
        ldns_dname_new_frm_data(static_cast<uint16_t>(plan.qname.size()), plan.qname.data());
    if (!owner)
      return std::nullopt;
    ldns_rr_set_owner(q.get(), owner);
    ldns_rr_set_question(q.get(), true);
    ldns_rr_set_type(q.get(), static_cast<ldns_rr_type>(plan.qtype));
    ldns_rr_set_class(q.get(), static_cast<ldns_rr_class>(plan.qclass));
    if (!ldns_pkt_push_rr(pkt.get(), LDNS_SECTION_QUESTION, q.get()))
      return std::nullopt;
    q.release();
  }
  for (size_t i = 0; i < answers; ++i)
    if (!push_copy(pkt.get(), LDNS_SECTION_ANSWER, plan.answer[i]))
      return std::nullopt;
  if (authority)
    for (auto* rr : plan.authority)
      if (!push_copy(pkt.get(), LDNS_SECTION_AUTHORITY, rr))
        return std::nullopt;
  if (additional)
    for (auto* rr : plan.additional)
      if (!push_copy(pkt.get(), LDNS_SECTION_ADDITIONAL, rr))
        return std::nullopt;
  if (plan.edns) {
    ldns_pkt_set_edns_udp_size(pkt.get(), advertised_udp_size);
    ldns_pkt_set_edns_extended_rcode(pkt.get(), static_cast<uint8_t>(plan.rcode >> 4));
  }
  uint8_t* raw = nullptr;
  size_t size = 0;
  ldns_status status = ldns_pkt2wire(&raw, pkt.get(), &size);
  std::unique_ptr<uint8_t, c_free> wire(raw);
  if (status != LDNS_STATUS_OK || !wire || size < header_size)
    return std::nullopt;
  std::string out(reinterpret_cast<const char*>(wire.get()), size);
  // The ID and flags are written here rather than through ldns: its opcode type only names
  // the assigned opcodes, and we echo whatever the query carried.
  unsigned flags = 0x8000u | (plan.opcode & 0xFu) << 11 | (plan.aa ? 0x0400u : 0u) |
                   (tc ? 0x0200u : 0u) | (plan.rd ? 0x0100u : 0u) | (plan.rcode & 0xFu);
  out[0] = static_cast<char>(plan.id >> 8);
  out[1] = static_cast<char>(plan.id & 0xFF);
  out[2] = static_cast<char>(flags >> 8);
  out[3] = static_cast<char>(flags & 0xFF);
  return out;
}

/// The wire form of `plan` in at most `limit` bytes: the additional section goes first (no TC,
/// RFC 2181 9), then, with TC set, the authority section and answer records from the end.
std::optional<std::string> render(const reply_plan& plan, size_t limit) {
  auto full = serialize(plan, plan.answer.size(), true, true, false);
  if (!full || full->size() <= limit)
    return full;
  if (!plan.additional.empty()) {
    auto no_additional = serialize(plan, plan.answer.size(), true, false, false);
    if (!no_additional || no_additional->size() <= limit)
      return no_additional;
  }
  // The most answer records that fit, by bisection (the size grows with the count): one
  // serialization per dropped record was quadratic, seconds of a worker for a 34-byte query
  // at a name with a few thousand records.
  auto best = serialize(plan, 0, false, false, true);
  if (!best || best->size() > limit)
    return best;
  size_t fits = 0;                          // this many answer records fit
  size_t too_many = plan.answer.size() + 1; // the fewest known not to fit
  while (too_many - fits > 1) {
    auto mid = fits + (too_many - fits) / 2;
    auto candidate = serialize(plan, mid, false, false, true);
    if (!candidate)
      return candidate;
    if (candidate->size() <= limit) {
      fits = mid;
      best = std::move(candidate);
    } else {
      too_many = mid;
    }
  }
  return best;
}

} // namespace

// -- the zone ------------------------------------------------------------------------------------

/// The zone's data: owned records and an index by name.
struct dns_zone::impl {
  /// The records and empty non-terminals at one name.
  struct node {
    std::vector<const ldns_rr*> rrs; ///< In file order; empty for an empty non-terminal.
    bool delegation = false;         ///< Has NS records and is not the apex.
  };

  std::vector<rr_ptr> records;
  const ldns_rr* soa = nullptr;
  rr_ptr negative_soa; ///< The SOA with the negative-caching TTL (RFC 2308 3), for authority.
  std::string apex;    ///< Key of the SOA owner.
  std::unordered_map<std::string, node> names;

  /// The node at `key`, or null.
  const node* find(const std::string& key) const {
    auto it = names.find(key);
    return it == names.end() ? nullptr : &it->second;
  }

  /// The delegation closest to the apex at or above `key` (a name in the zone), or null.
  const node* find_cut(const std::string& key) const {
    const node* cut = nullptr;
    for (size_t pos = 0; key.size() - pos > apex.size(); pos = next_label(key, pos))
      if (auto* n = find(key.substr(pos)); n && n->delegation)
        cut = n;
    return cut;
  }

  /// Adds the in-zone A and AAAA records of NS and MX targets in the answer and authority
  /// sections to the additional section.
  void add_glue(reply_plan& plan) const {
    std::unordered_set<const ldns_rr*> present(plan.answer.begin(), plan.answer.end());
    auto add_for = [&](const std::vector<const ldns_rr*>& section) {
      for (auto* rr : section) {
        auto type = type_of(rr);
        const ldns_rdf* target = type == type_ns   ? dname_field(rr, 0)
                                 : type == type_mx ? dname_field(rr, 1)
                                                   : nullptr;
        if (!target)
          continue;
        auto* n = find(key_of(target));
        if (!n)
          continue;
        for (auto* addr : n->rrs) {
          auto t = type_of(addr);
          if ((t == type_a || t == type_aaaa) && present.insert(addr).second)
            plan.additional.push_back(addr);
        }
      }
    };
    add_for(plan.answer);
    add_for(plan.authority);
  }

  /// Fills the sections and rcode of `plan` for a query of `qtype` at `key` (in the zone).
  void resolve(reply_plan& plan, std::string key, uint16_t qtype) const {
    plan.aa = true;
    std::unordered_set<std::string> visited{key};
    for (size_t hop = 0;; ++hop) {
      if (auto* cut = find_cut(key)) {
        if (hop == 0) { // a referral: not authoritative for the name
          plan.aa = false;
          for (auto* rr : cut->rrs)
            if (type_of(rr) == type_ns)
              plan.authority.push_back(rr);
          add_glue(plan);
        }
        return; // a CNAME into a delegation: the resolver follows it from there
      }
      auto* n = find(key);
      if (!n) {
        plan.rcode = rcode_nxdomain; // RFC 6604: the rcode is about the last name of a chain
        plan.authority.push_back(negative_soa.get());
        return;
      }
      bool matched = false;
      const ldns_rr* cname = nullptr;
      for (auto* rr : n->rrs) {
        if (qtype == type_any || type_of(rr) == qtype) {
          plan.answer.push_back(rr);
          matched = true;
        } else if (type_of(rr) == type_cname) {
          cname = rr;
        }
      }
      if (matched) {
        add_glue(plan);
        return;
      }
      if (!cname) { // NODATA
        plan.authority.push_back(negative_soa.get());
        return;
      }
      plan.answer.push_back(cname);
      const ldns_rdf* target = dname_field(cname, 0);
      if (!target)
        return;
      key = key_of(target);
      if (hop == max_cname_hops || !is_at_or_below(key, apex) || !visited.insert(key).second)
        return;
    }
  }

  /// The reply to `msg`, or nullopt for silence.
  std::optional<std::string> answer(std::string_view msg) const {
    query_info q;
    if (!parse_query(msg, q))
      return std::nullopt;
    reply_plan plan;
    plan.id = q.id;
    plan.opcode = q.opcode;
    plan.rd = q.rd;
    plan.edns = q.edns;
    size_t limit = classic_udp_limit;
    if (q.edns)
      limit = std::clamp<size_t>(q.udp_size, classic_udp_limit, max_udp_limit);
    if (q.qdcount == 1 && q.question_ok) {
      plan.question = true;
      plan.qname = q.qname;
      plan.qtype = q.qtype;
      plan.qclass = q.qclass;
    }
    if (q.opcode != 0)
      plan.rcode = rcode_notimp;
    else if (!q.well_formed || q.qdcount != 1 || q.qtype == type_opt)
      plan.rcode = rcode_formerr;
    else if (q.edns && q.edns_version != 0)
      plan.rcode = rcode_badvers;
    else if ((q.qclass != class_in && q.qclass != class_any) || q.qtype == type_axfr ||
             q.qtype == type_ixfr)
      plan.rcode = rcode_refused; // other classes, and zone transfers (not over UDP)
    else if (auto key = key_of(reinterpret_cast<const uint8_t*>(q.qname.data()), q.qname.size());
             !is_at_or_below(key, apex))
      plan.rcode = rcode_refused;
    else
      resolve(plan, std::move(key), q.qtype);
    return render(plan, limit);
  }
};

std::optional<dns_zone> dns_zone::load(const std::string& path, const std::string& default_origin,
                                       std::string& error) {
  try {
    auto fail = [&](const load_error& e) {
      error = path + (e.line > 0 ? ":" + std::to_string(e.line) : std::string()) + ": " + e.what;
      return std::nullopt;
    };
    std::string content;
    if (auto why = read_regular_file(path, content))
      return fail({0, *why});

    load_error err;
    std::vector<logical_line> lines;
    std::vector<parsed_record> parsed;
    if (!split_lines(content, lines, err) || !parse_records(lines, default_origin, parsed, err))
      return fail(err);

    auto z = std::make_unique<impl>();
    const parsed_record* soa = nullptr;
    for (auto& r : parsed) {
      if (type_of(r.rr.get()) != type_soa)
        continue;
      if (soa)
        return fail({r.line, "a second SOA record (the first is on line " +
                                 std::to_string(soa->line) + ")"});
      soa = &r;
    }
    if (!soa)
      return fail({0, "no SOA record"});
    z->apex = key_of(ldns_rr_owner(soa->rr.get()));
    std::string apex_name = show_name(ldns_rr_owner(soa->rr.get()));

    std::unordered_map<const ldns_rr*, int> line_of;
    // RFC 2181 5: an RRset has no duplicate records. ldns_rr_compare's equality (owner,
    // class, type and canonical rdata; not the TTL) as a key, so that a name with thousands of
    // records loads in linear time.
    std::unique_ptr<ldns_buffer, buffer_free> wire(ldns_buffer_new(512));
    if (!wire)
      return fail({0, "out of memory"});
    std::unordered_set<std::string> seen;
    auto identity = [&](const ldns_rr* rr) {
      ldns_buffer_clear(wire.get());
      if (ldns_rr2buffer_wire_canonical(wire.get(), rr, LDNS_SECTION_ANSWER) != LDNS_STATUS_OK)
        throw std::bad_alloc();
      std::string bytes(reinterpret_cast<const char*>(ldns_buffer_begin(wire.get())),
                        ldns_buffer_position(wire.get()));
      size_t ttl_at = ldns_rdf_size(ldns_rr_owner(rr)) + 4; // after owner, type, class
      if (bytes.size() >= ttl_at + 4)
        bytes.erase(ttl_at, 4);
      return bytes;
    };
    for (auto& r : parsed) {
      const ldns_rr* rr = r.rr.get();
      std::string key = key_of(ldns_rr_owner(rr));
      if (!is_at_or_below(key, z->apex))
        return fail({r.line, "'" + show_name(ldns_rr_owner(rr)) + "' is outside the zone '" +
                                 apex_name + "'"});
      auto& n = z->names[key];
      if (!seen.insert(identity(rr)).second)
        continue;
      n.rrs.push_back(rr);
      line_of[rr] = r.line;
      if (rr == soa->rr.get())
        z->soa = rr;
      z->records.push_back(std::move(r.rr));
    }

    std::vector<std::string> owners;
    for (auto& [key, n] : z->names) {
      owners.push_back(key);
      const ldns_rr* cname = nullptr;
      bool has_ns = false;
      for (auto* rr : n.rrs) {
        has_ns = has_ns || type_of(rr) == type_ns;
        if (type_of(rr) == type_cname)
          cname = rr;
      }
      if (cname && n.rrs.size() > 1)
        return fail({line_of[cname], "a CNAME at '" + show_name(ldns_rr_owner(cname)) +
                                         "' must be the only record of its name"});
      n.delegation = has_ns && key != z->apex;
    }
    z->negative_soa.reset(ldns_rr_clone(z->soa));
    if (!z->negative_soa)
      return fail({0, "out of memory"});
    if (ldns_rr_rd_count(z->soa) >= 7) {
      uint32_t minimum = ldns_rdf2native_int32(ldns_rr_rdf(z->soa, 6));
      ldns_rr_set_ttl(z->negative_soa.get(), std::min(ldns_rr_ttl(z->soa), minimum));
    }
    // Empty non-terminals: every name between an owner and the apex exists.
    for (auto& key : owners)
      for (size_t pos = next_label(key, 0); key.size() - pos > z->apex.size();
           pos = next_label(key, pos))
        z->names.try_emplace(key.substr(pos));
    return dns_zone(std::move(z));
  } catch (const std::exception& e) {
    error = path + ": " + e.what();
    return std::nullopt;
  }
}

dns_zone::dns_zone(std::unique_ptr<impl> pimpl) : impl_(std::move(pimpl)) {}

dns_zone::dns_zone(dns_zone&&) noexcept = default;

dns_zone& dns_zone::operator=(dns_zone&&) noexcept = default;

dns_zone::~dns_zone() = default;

std::optional<std::string> dns_zone::answer(std::string_view query) const {
  if (!impl_)
    return std::nullopt;
  try {
    return impl_->answer(query);
  } catch (...) { // out of memory: better silence than a crash
    return std::nullopt;
  }
}

std::string dns_zone::origin() const {
  return impl_ ? show_name(ldns_rr_owner(impl_->soa)) : std::string();
}

size_t dns_zone::size() const {
  return impl_ ? impl_->records.size() : 0;
}

} // namespace example
