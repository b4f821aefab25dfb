// libFuzzer target for the DNS responder of the dns_server example
// (examples/dns_zone.{hpp,cpp}): `dns_zone::answer` on any datagram. The zone
// is the file named by ATOLL_FUZZ_ZONE (test/fuzz/CMakeLists.txt:
// test/fuzz/dns_answer.zone, the sample zone and records for the other
// paths, unless ATOLL_FUZZ_DNS_ZONE says otherwise), loaded once with the default origin dns_server uses (none); a
// zone that does not load stops the target at start-up with the loader's
// message.
//
// The whole input is one query datagram (no mode byte), so the seeds are plain
// queries. The checks read the query with a lenient walk of their own (names
// skipped without following pointers; read by following pointers anywhere):
// wherever dns_zone's stricter parser gets through a part of the query, the
// walk sees the same bytes there. Checked on every input:
//
// Silence and determinism
// - answer() returns (it never throws); nothing for fewer than 12 bytes or
//   with QR set, a reply for every other datagram;
// - the same bytes give the same result twice, and again from a copy in a heap
//   block of exactly their size (ASan sees any read past the datagram).
// Header
// - the reply has at least 12 bytes, the query's ID, QR set, the query's
//   opcode and RD bit, and RA, Z, AD and CD clear.
// Size and EDNS
// - no OPT record in the reply: at most 512 bytes. An OPT record: the query
//   has one too, and the reply is at most its UDP size clamped to
//   [512, 4096]; the reply's OPT is owned by the root, advertises 1232 bytes,
//   version 0, no DO bit or Z flags, no options. A query without any OPT
//   record gets a reply without one.
// Wire format
// - walking the reply's sections ends exactly at its end; ldns_wire2pkt parses
//   it (LDNS_STATUS_OK) and agrees with the header: ID, QR, AA, TC, RD, rcode,
//   the section counts (ARCOUNT less the OPT), EDNS and its fields;
// - QDCOUNT is 0 or 1; the rcode (with the OPT's extended bits) is one of
//   NOERROR, FORMERR, NXDOMAIN, NOTIMP, REFUSED, BADVERS;
// - every record but the OPT is of class IN and owned by a name at or below
//   the zone's origin (the reply carries only the zone's data).
// Question
// - an echoed question means the query's QDCOUNT was 1, and the name (bytes and
//   case as sent, uncompressed), type and class are the query's;
// - a query whose QDCOUNT is not 1 gets no question back; a reply without a
//   question is FORMERR or NOTIMP.
// Rcode
// - NOTIMP exactly when the opcode is not 0;
// - any rcode but FORMERR and NOTIMP: the query parsed whole (its sections end
//   exactly at its end), and the reply has an OPT exactly when the query has
//   one;
// - with EDNS and opcode 0: an OPT version other than 0 gives FORMERR or
//   BADVERS, version 0 never BADVERS; BADVERS only with an OPT;
// - opcode 0, one question, type OPT: FORMERR;
// - opcode 0, neither FORMERR nor BADVERS: REFUSED exactly when the class is
//   neither IN nor ANY, the type is AXFR or IXFR, or the name is outside the
//   zone; otherwise NOERROR or NXDOMAIN;
// - FORMERR, NOTIMP, REFUSED, BADVERS: AA and TC clear, no answer, authority
//   or additional record (but the OPT);
// - NXDOMAIN: AA set; unless truncated, the authority section is the zone's
//   SOA alone and there is no additional record (but the OPT).
// Truncation (render() drops the additional section first, without TC, then
// with TC the authority section and answers from the end)
// - TC set: no authority record and no additional record but the OPT.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ldns_cxx.hpp"

#include "dns_zone.hpp"

#include "fuzz_check.hpp"

#ifndef ATOLL_FUZZ_ZONE
#error "ATOLL_FUZZ_ZONE must name the zone file to answer from"
#endif

namespace {

// -- what dns_zone.cpp promises ------------------------------------------------------------------

constexpr size_t header_size = 12;
constexpr size_t classic_udp_limit = 512; // without EDNS
constexpr size_t max_udp_limit = 4096;    // the most an EDNS client is sent
constexpr uint16_t advertised_udp_size = 1232;
constexpr size_t max_name_size = 255;

constexpr uint16_t type_soa = 6;
constexpr uint16_t type_opt = 41;
constexpr uint16_t type_ixfr = 251;
constexpr uint16_t type_axfr = 252;
constexpr uint16_t class_in = 1;
constexpr uint16_t class_any = 255;

constexpr unsigned rcode_noerror = 0;
constexpr unsigned rcode_formerr = 1;
constexpr unsigned rcode_nxdomain = 3;
constexpr unsigned rcode_notimp = 4;
constexpr unsigned rcode_refused = 5;
constexpr unsigned rcode_badvers = 16;

constexpr unsigned flag_qr = 0x8000;
constexpr unsigned flag_aa = 0x0400;
constexpr unsigned flag_tc = 0x0200;
constexpr unsigned flag_rd = 0x0100;
constexpr unsigned flags_ra_z_ad_cd = 0x00F0;

// -- reading wire data ---------------------------------------------------------------------------

uint8_t byte_at(std::string_view msg, size_t at) {
  return static_cast<uint8_t>(msg[at]);
}

uint16_t u16_at(std::string_view msg, size_t at) {
  return static_cast<uint16_t>(byte_at(msg, at) << 8 | byte_at(msg, at + 1));
}

uint32_t u32_at(std::string_view msg, size_t at) {
  return static_cast<uint32_t>(u16_at(msg, at)) << 16 | u16_at(msg, at + 2);
}

/// Moves `pos` past the name there without following a pointer (a pointer ends
/// it). False if the name runs past the end or has a label type other than 0
/// or 3 (which dns_zone refuses too).
bool skip_name(std::string_view msg, size_t& pos) {
  while (pos < msg.size()) {
    uint8_t len = byte_at(msg, pos);
    if ((len & 0xC0) == 0xC0) {
      if (msg.size() - pos < 2)
        return false;
      pos += 2;
      return true;
    }
    if ((len & 0xC0) != 0 || msg.size() - pos - 1 < size_t{len})
      return false;
    pos += 1 + size_t{len};
    if (len == 0)
      return true;
  }
  return false;
}

/// The uncompressed wire form of the name at `pos`, pointers followed wherever
/// they point (at most 300 of them); nullopt if malformed or over 255 bytes.
std::optional<std::string> read_name(std::string_view msg, size_t pos) {
  std::string out;
  int jumps = 0;
  while (pos < msg.size()) {
    uint8_t len = byte_at(msg, pos);
    if ((len & 0xC0) == 0xC0) {
      if (msg.size() - pos < 2 || ++jumps > 300)
        return std::nullopt;
      pos = size_t{len & 0x3Fu} << 8 | byte_at(msg, pos + 1);
      continue;
    }
    if ((len & 0xC0) != 0 || msg.size() - pos - 1 < size_t{len} ||
        out.size() + 1 + size_t{len} > max_name_size)
      return std::nullopt;
    out.append(msg.substr(pos, 1 + size_t{len}));
    if (len == 0)
      return out;
    pos += 1 + size_t{len};
  }
  return std::nullopt;
}

/// An OPT record of a message.
struct opt_record {
  size_t owner_at = 0;
  uint16_t udp_size = 0; ///< Its class field.
  uint32_t ttl = 0;      ///< Extended rcode, version, DO bit and Z.
  uint16_t rdlength = 0;
};

/// What a lenient walk of a message's sections finds.
struct layout {
  uint16_t counts[4] = {};     ///< QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT.
  bool first_question = false; ///< The first question is all there.
  size_t question_at = 0;      ///< The offset of its name.
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  std::optional<opt_record> first_opt; ///< The first record (not question) of type OPT.
  bool complete = false;               ///< Every question and record is there.
  size_t end = 0;                      ///< Where the last record ends, if complete.
};

/// Walks `msg` (at least a header): the questions and records its counts
/// announce, as far as they are there.
layout walk(std::string_view msg) {
  layout l;
  for (size_t i = 0; i < 4; ++i)
    l.counts[i] = u16_at(msg, 4 + 2 * i);
  size_t pos = header_size;
  for (size_t i = 0; i < size_t{l.counts[0]}; ++i) {
    size_t at = pos;
    if (!skip_name(msg, pos) || msg.size() - pos < 4)
      return l;
    if (i == 0) {
      l.first_question = true;
      l.question_at = at;
      l.qtype = u16_at(msg, pos);
      l.qclass = u16_at(msg, pos + 2);
    }
    pos += 4;
  }
  size_t records = size_t{l.counts[1]} + l.counts[2] + l.counts[3];
  for (size_t i = 0; i < records; ++i) {
    size_t at = pos;
    if (!skip_name(msg, pos) || msg.size() - pos < 10)
      return l;
    uint16_t type = u16_at(msg, pos);
    uint16_t rdlength = u16_at(msg, pos + 8);
    if (msg.size() - pos - 10 < size_t{rdlength})
      return l;
    if (type == type_opt && !l.first_opt)
      l.first_opt = opt_record{at, u16_at(msg, pos + 2), u32_at(msg, pos + 4), rdlength};
    pos += 10 + size_t{rdlength};
  }
  l.complete = true;
  l.end = pos;
  return l;
}

/// `name` with ASCII letters lowercased (as dns_zone compares names).
std::string lowered(std::string name) {
  for (auto& c : name)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return name;
}

/// Whether the valid wire name `name` is `zone` or below it, on label boundaries.
bool at_or_below(const std::string& name, const std::string& zone) {
  size_t pos = 0;
  while (name.size() - pos > zone.size())
    pos += 1 + size_t{static_cast<uint8_t>(name[pos])};
  return name.size() - pos == zone.size() && name.compare(pos, std::string::npos, zone) == 0;
}

/// The wire form of an ldns domain name.
std::string wire_of(const ldns_rdf* dname) {
  return std::string(reinterpret_cast<const char*>(ldns_rdf_data(dname)), ldns_rdf_size(dname));
}

// -- the zone ------------------------------------------------------------------------------------

struct loaded_zone {
  example::dns_zone zone;
  std::string apex; ///< The origin's wire form, lowercased.
};

[[noreturn]] void cannot_load(const std::string& why) {
  std::fprintf(stderr, "fuzz_dns_answer: cannot load the zone %s: %s\n", ATOLL_FUZZ_ZONE,
               why.c_str());
  std::abort();
}

/// The zone, loaded on first use.
const loaded_zone& the_zone() {
  static const loaded_zone z = [] {
    std::string error;
    auto zone = example::dns_zone::load(ATOLL_FUZZ_ZONE, "", error);
    if (!zone)
      cannot_load(error);
    std::string origin = zone->origin();
    ldns_rdf* name = ldns_dname_new_frm_str(origin.c_str());
    if (!name)
      cannot_load("its origin '" + origin + "' is not a domain name");
    std::string apex = lowered(wire_of(name));
    ldns_rdf_deep_free(name);
    return loaded_zone{std::move(*zone), std::move(apex)};
  }();
  return z;
}

// -- checks --------------------------------------------------------------------------------------

struct pkt_free {
  void operator()(ldns_pkt* p) const noexcept {
    ldns_pkt_free(p);
  }
};

/// `zone.answer` on a copy of `query` in a heap block of exactly its size.
std::optional<std::string> answer_exact(const example::dns_zone& zone, std::string_view query) {
  auto block = std::make_unique<char[]>(query.empty() ? 1 : query.size());
  if (!query.empty())
    std::memcpy(block.get(), query.data(), query.size());
  return zone.answer(std::string_view{block.get(), query.size()});
}

/// Every record of `list` is of class IN and owned by a name at or below `apex`.
void check_zone_data(const ldns_rr_list* list, const std::string& apex) {
  for (size_t i = 0; list && i < ldns_rr_list_rr_count(list); ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(list, i);
    FUZZ_CHECK(static_cast<unsigned>(ldns_rr_get_class(rr)) == class_in);
    FUZZ_CHECK(at_or_below(lowered(wire_of(ldns_rr_owner(rr))), apex));
  }
}

/// Checks `reply`, the answer to `query` (a query of at least a header, QR clear).
void check_reply(const loaded_zone& z, std::string_view query, std::string_view reply) {
  // Header.
  FUZZ_CHECK(reply.size() >= header_size);
  const unsigned qflags = u16_at(query, 2);
  const unsigned rflags = u16_at(reply, 2);
  const unsigned opcode = (qflags >> 11) & 0xF;
  FUZZ_CHECK(reply.substr(0, 2) == query.substr(0, 2));
  FUZZ_CHECK((rflags & flag_qr) != 0);
  FUZZ_CHECK(((rflags >> 11) & 0xF) == opcode);
  FUZZ_CHECK((rflags & flag_rd) == (qflags & flag_rd));
  FUZZ_CHECK((rflags & flags_ra_z_ad_cd) == 0);
  const bool aa = (rflags & flag_aa) != 0;
  const bool tc = (rflags & flag_tc) != 0;

  // Sections, EDNS and size.
  const layout rl = walk(reply);
  const layout ql = walk(query);
  FUZZ_CHECK(rl.complete && rl.end == reply.size());
  FUZZ_CHECK(rl.counts[0] <= 1);
  const bool edns = rl.first_opt.has_value();
  unsigned rcode = rflags & 0xF;
  size_t limit = classic_udp_limit;
  if (edns) {
    const opt_record& opt = *rl.first_opt;
    FUZZ_CHECK(byte_at(reply, opt.owner_at) == 0);
    FUZZ_CHECK(opt.udp_size == advertised_udp_size);
    FUZZ_CHECK(((opt.ttl >> 16) & 0xFF) == 0);
    FUZZ_CHECK((opt.ttl & 0xFFFF) == 0);
    FUZZ_CHECK(opt.rdlength == 0);
    rcode |= (opt.ttl >> 24) << 4;
    FUZZ_CHECK(ql.first_opt.has_value());
    limit = std::clamp<size_t>(ql.first_opt->udp_size, classic_udp_limit, max_udp_limit);
  }
  FUZZ_CHECK(reply.size() <= limit);
  if (!ql.first_opt)
    FUZZ_CHECK(!edns);
  const int extra = edns ? 1 : 0; // the OPT in ARCOUNT
  FUZZ_CHECK(rl.counts[3] >= extra);
  FUZZ_CHECK(rcode == rcode_noerror || rcode == rcode_formerr || rcode == rcode_nxdomain ||
             rcode == rcode_notimp || rcode == rcode_refused || rcode == rcode_badvers);

  // ldns reads the reply as the header says.
  ldns_pkt* raw = nullptr;
  ldns_status status =
      ldns_wire2pkt(&raw, reinterpret_cast<const uint8_t*>(reply.data()), reply.size());
  std::unique_ptr<ldns_pkt, pkt_free> pkt(raw);
  FUZZ_CHECK(status == LDNS_STATUS_OK);
  FUZZ_CHECK(pkt != nullptr);
  FUZZ_CHECK(ldns_pkt_id(pkt.get()) == u16_at(query, 0));
  FUZZ_CHECK(ldns_pkt_qr(pkt.get()));
  FUZZ_CHECK(ldns_pkt_aa(pkt.get()) == aa);
  FUZZ_CHECK(ldns_pkt_tc(pkt.get()) == tc);
  FUZZ_CHECK(ldns_pkt_rd(pkt.get()) == ((qflags & flag_rd) != 0));
  FUZZ_CHECK(static_cast<unsigned>(ldns_pkt_get_rcode(pkt.get())) == (rflags & 0xF));
  FUZZ_CHECK(ldns_pkt_qdcount(pkt.get()) == rl.counts[0]);
  FUZZ_CHECK(ldns_pkt_ancount(pkt.get()) == rl.counts[1]);
  FUZZ_CHECK(ldns_pkt_nscount(pkt.get()) == rl.counts[2]);
  FUZZ_CHECK(int{ldns_pkt_arcount(pkt.get())} == rl.counts[3] - extra);
  FUZZ_CHECK(ldns_pkt_edns(pkt.get()) == edns);
  if (edns) {
    FUZZ_CHECK(ldns_pkt_edns_udp_size(pkt.get()) == advertised_udp_size);
    FUZZ_CHECK(unsigned{ldns_pkt_edns_extended_rcode(pkt.get())} == rcode >> 4);
    FUZZ_CHECK(unsigned{ldns_pkt_edns_version(pkt.get())} == 0);
  }
  check_zone_data(ldns_pkt_answer(pkt.get()), z.apex);
  check_zone_data(ldns_pkt_authority(pkt.get()), z.apex);
  check_zone_data(ldns_pkt_additional(pkt.get()), z.apex);

  // The question.
  const bool question = rl.counts[0] == 1;
  std::string qname;
  if (question) {
    FUZZ_CHECK(u16_at(query, 4) == 1);
    FUZZ_CHECK(ql.first_question && rl.first_question);
    FUZZ_CHECK(rl.question_at == header_size);
    auto asked = read_name(query, ql.question_at);
    auto echoed = read_name(reply, rl.question_at);
    FUZZ_CHECK(asked.has_value() && echoed.has_value());
    FUZZ_CHECK(*asked == *echoed);
    FUZZ_CHECK(rl.qtype == ql.qtype && rl.qclass == ql.qclass);
    qname = *echoed;
  }
  if (u16_at(query, 4) != 1)
    FUZZ_CHECK(!question);
  if (!question)
    FUZZ_CHECK(rcode == rcode_formerr || rcode == rcode_notimp);

  // The rcode.
  FUZZ_CHECK((opcode != 0) == (rcode == rcode_notimp));
  if (rcode != rcode_formerr && rcode != rcode_notimp) {
    FUZZ_CHECK(ql.complete && ql.end == query.size());
    FUZZ_CHECK(edns == ql.first_opt.has_value());
  }
  if (rcode == rcode_badvers)
    FUZZ_CHECK(edns);
  if (edns && opcode == 0) {
    const unsigned version = (ql.first_opt->ttl >> 16) & 0xFF;
    if (version != 0)
      FUZZ_CHECK(rcode == rcode_formerr || rcode == rcode_badvers);
    else
      FUZZ_CHECK(rcode != rcode_badvers);
  }
  if (opcode == 0 && question && rl.qtype == type_opt)
    FUZZ_CHECK(rcode == rcode_formerr);
  if (opcode == 0 && rcode != rcode_formerr && rcode != rcode_badvers) {
    FUZZ_CHECK(question);
    const bool refused = (rl.qclass != class_in && rl.qclass != class_any) ||
                         rl.qtype == type_axfr || rl.qtype == type_ixfr ||
                         !at_or_below(lowered(qname), z.apex);
    FUZZ_CHECK((rcode == rcode_refused) == refused);
    if (!refused)
      FUZZ_CHECK(rcode == rcode_noerror || rcode == rcode_nxdomain);
  }
  if (rcode != rcode_noerror && rcode != rcode_nxdomain) {
    FUZZ_CHECK(!aa && !tc);
    FUZZ_CHECK(rl.counts[1] == 0 && rl.counts[2] == 0 && rl.counts[3] == extra);
  }
  if (rcode == rcode_nxdomain) {
    FUZZ_CHECK(aa);
    if (!tc) {
      FUZZ_CHECK(rl.counts[2] == 1 && rl.counts[3] == extra);
      const ldns_rr* soa = ldns_rr_list_rr(ldns_pkt_authority(pkt.get()), 0);
      FUZZ_CHECK(soa != nullptr);
      FUZZ_CHECK(static_cast<unsigned>(ldns_rr_get_type(soa)) == type_soa);
      FUZZ_CHECK(lowered(wire_of(ldns_rr_owner(soa))) == z.apex);
    }
  }

  // Truncation.
  if (tc)
    FUZZ_CHECK(rl.counts[2] == 0 && rl.counts[3] == extra);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  the_zone(); // a zone that does not load stops the target before the first input
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const loaded_zone& z = the_zone();
  std::string_view query{reinterpret_cast<const char*>(data), size};
  auto reply = z.zone.answer(query);

  FUZZ_CHECK(z.zone.answer(query) == reply);
  FUZZ_CHECK(answer_exact(z.zone, query) == reply);

  const bool silent = size < header_size || (byte_at(query, 2) & 0x80) != 0;
  FUZZ_CHECK(reply.has_value() == !silent);
  if (reply)
    check_reply(z, query, *reply);
  return 0;
}
