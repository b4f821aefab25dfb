// The DNS responder of the dns_server example (examples/dns_zone.hpp), without any network:
// queries are built with ldns (or by hand when they must be malformed), handed to
// dns_zone::answer, and the replies parsed back with ldns_wire2pkt.
#include <boost/test/unit_test.hpp>

#include "ldns_cxx.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "dns_zone.hpp"
#include "support/fd_leak_check.hpp"

#ifndef ATOLL_EXAMPLES_DIR
#error "ATOLL_EXAMPLES_DIR must name the examples source directory"
#endif

namespace {

// -- ldns helpers --------------------------------------------------------------------------------

/// Frees a parsed packet.
struct pkt_free {
  void operator()(ldns_pkt* p) const noexcept {
    ldns_pkt_free(p);
  }
};

using pkt_ptr = std::unique_ptr<ldns_pkt, pkt_free>;

/// Takes ownership of a string allocated by ldns.
std::string take(char* s) {
  std::string out = s ? s : "";
  std::free(s);
  return out;
}

/// "owner TYPE rdata" of a record, without TTL and class.
std::string show(const ldns_rr* rr) {
  std::string out =
      take(ldns_rdf2str(ldns_rr_owner(rr))) + " " + take(ldns_rr_type2str(ldns_rr_get_type(rr)));
  for (size_t i = 0; i < ldns_rr_rd_count(rr); ++i)
    out += " " + take(ldns_rdf2str(ldns_rr_rdf(rr, i)));
  return out;
}

/// The records of a section, shown, in order.
std::vector<std::string> shown(const ldns_rr_list* list) {
  std::vector<std::string> out;
  for (size_t i = 0; list && i < ldns_rr_list_rr_count(list); ++i)
    out.push_back(show(ldns_rr_list_rr(list, i)));
  return out;
}

/// The records of a section, shown, sorted.
std::vector<std::string> sorted(const ldns_rr_list* list) {
  auto out = shown(list);
  std::sort(out.begin(), out.end());
  return out;
}

/// Options of a query made with ldns.
struct query_options {
  uint16_t id = 0x1234;
  bool rd = true;
  std::optional<uint16_t> edns; ///< The advertised UDP payload size, if any.
  uint8_t edns_version = 0;
  ldns_rr_class qclass = LDNS_RR_CLASS_IN;
  uint8_t opcode = 0;
};

/// A well-formed query for `name` and `type`.
std::string make_query(const std::string& name, ldns_rr_type type, const query_options& o = {}) {
  ldns_rdf* qname = ldns_dname_new_frm_str(name.c_str());
  if (!qname)
    throw std::invalid_argument("bad test name " + name);
  pkt_ptr p(ldns_pkt_query_new(qname, type, o.qclass, o.rd ? LDNS_RD : 0));
  ldns_pkt_set_id(p.get(), o.id);
  if (o.edns) {
    ldns_pkt_set_edns_udp_size(p.get(), *o.edns);
    ldns_pkt_set_edns_version(p.get(), o.edns_version);
  }
  uint8_t* wire = nullptr;
  size_t size = 0;
  if (ldns_pkt2wire(&wire, p.get(), &size) != LDNS_STATUS_OK)
    throw std::runtime_error("ldns_pkt2wire failed");
  std::string out(reinterpret_cast<const char*>(wire), size);
  std::free(wire);
  out[2] = static_cast<char>((out[2] & 0x87) | (o.opcode & 0xF) << 3);
  return out;
}

/// A query with edns: shorthand for the common case.
query_options with_edns(uint16_t size) {
  query_options o;
  o.edns = size;
  return o;
}

/// A parsed reply.
struct reply {
  std::string wire;
  pkt_ptr pkt;

  /// The full (extended) response code.
  unsigned rcode() const {
    return static_cast<unsigned>(ldns_pkt_get_rcode(pkt.get())) |
           static_cast<unsigned>(ldns_pkt_edns_extended_rcode(pkt.get())) << 4;
  }
  bool aa() const {
    return ldns_pkt_aa(pkt.get());
  }
  bool tc() const {
    return ldns_pkt_tc(pkt.get());
  }
  bool rd() const {
    return ldns_pkt_rd(pkt.get());
  }
  bool ra() const {
    return ldns_pkt_ra(pkt.get());
  }
  uint16_t id() const {
    return ldns_pkt_id(pkt.get());
  }
  unsigned opcode() const {
    return (static_cast<uint8_t>(wire[2]) >> 3) & 0xF;
  }
  bool edns() const {
    return ldns_pkt_edns(pkt.get());
  }
  std::vector<std::string> question() const {
    return shown(ldns_pkt_question(pkt.get()));
  }
  std::vector<std::string> answer() const {
    return shown(ldns_pkt_answer(pkt.get()));
  }
  std::vector<std::string> authority() const {
    return shown(ldns_pkt_authority(pkt.get()));
  }
  std::vector<std::string> additional() const {
    return sorted(ldns_pkt_additional(pkt.get()));
  }
};

/// Sends `query` to `zone` and parses the reply, which must exist and be well formed.
reply ask(const example::dns_zone& zone, const std::string& query) {
  auto wire = zone.answer(query);
  BOOST_REQUIRE_MESSAGE(wire, "no reply");
  BOOST_REQUIRE_GE(wire->size(), 12u);
  ldns_pkt* raw = nullptr;
  auto status = ldns_wire2pkt(&raw, reinterpret_cast<const uint8_t*>(wire->data()), wire->size());
  pkt_ptr pkt(raw);
  BOOST_REQUIRE_MESSAGE(status == LDNS_STATUS_OK,
                        "reply does not parse: " << ldns_get_errorstr_by_id(status));
  BOOST_REQUIRE(ldns_pkt_qr(pkt.get()));
  return reply{*wire, std::move(pkt)};
}

// -- hand-made wire data -------------------------------------------------------------------------

/// A 16-bit number in network order.
std::string u16(unsigned v) {
  return {static_cast<char>((v >> 8) & 0xFF), static_cast<char>(v & 0xFF)};
}

/// A DNS header.
std::string header(unsigned id, unsigned flags, unsigned qd, unsigned an = 0, unsigned ns = 0,
                   unsigned ar = 0) {
  return u16(id) + u16(flags) + u16(qd) + u16(an) + u16(ns) + u16(ar);
}

/// The uncompressed wire form of a dotted name ("www.example.test.").
std::string wire_name(const std::string& dotted) {
  std::string out;
  std::istringstream in(dotted);
  for (std::string label; std::getline(in, label, '.');)
    if (!label.empty())
      out += static_cast<char>(label.size()) + label;
  return out + '\0';
}

/// An OPT record advertising `size`.
std::string opt_record(unsigned size, unsigned version = 0) {
  return std::string(1, '\0') + u16(41) + u16(size) + '\0' + static_cast<char>(version) + u16(0) +
         u16(0);
}

// -- zones ---------------------------------------------------------------------------------------

/// The sample zone shipped with the example.
std::string sample_path() {
  return std::string(ATOLL_EXAMPLES_DIR) + "/zones/example.test.zone";
}

/// The sample zone, loaded once.
const example::dns_zone& sample() {
  static const example::dns_zone zone = [] {
    std::string error;
    auto z = example::dns_zone::load(sample_path(), "", error);
    if (!z)
      throw std::runtime_error("cannot load the sample zone: " + error);
    return std::move(*z);
  }();
  return zone;
}

/// A zone file in the temporary directory, removed when this goes out of scope.
class temp_file {
public:
  explicit temp_file(const std::string& content) {
    static std::atomic<int> counter{0};
    path_ =
        (std::filesystem::temp_directory_path() / ("dns_zone_test_" + std::to_string(::getpid()) +
                                                   "_" + std::to_string(++counter) + ".zone"))
            .string();
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;

  const std::string& path() const {
    return path_;
  }

private:
  std::string path_;
};

/// Loads `content` as a zone; the test fails if it does not load.
example::dns_zone load_text(const std::string& content, const std::string& origin = "") {
  temp_file file(content);
  std::string error;
  auto z = example::dns_zone::load(file.path(), origin, error);
  BOOST_REQUIRE_MESSAGE(z, "zone does not load: " << error);
  return std::move(*z);
}

/// The error message for `content`, which must fail to load.
std::string load_error(const std::string& content, const std::string& origin = "") {
  temp_file file(content);
  std::string error;
  auto z = example::dns_zone::load(file.path(), origin, error);
  BOOST_REQUIRE_MESSAGE(!z, "zone loaded but should not have");
  BOOST_TEST_MESSAGE("load error: " << error);
  BOOST_CHECK_NE(error.find(file.path()), std::string::npos);
  return error;
}

/// Whether `text` contains `part`.
bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// A zone for truncation, CNAME chains and delegations.
std::string test_zone_text() {
  std::string z = "$ORIGIN t.test.\n$TTL 60\n"
                  "@ IN SOA ns hostmaster 1 7200 900 1209600 30\n"
                  "@ IN NS ns\n"
                  "ns IN A 192.0.2.1\n"
                  "www IN A 192.0.2.80\n";
  for (int i = 0; i < 8; ++i) // about 900 bytes: over 512, under 1232
    z += "medium IN TXT \"" + std::to_string(i) + std::string(99, 'm') + "\"\n";
  for (int i = 0; i < 40; ++i) // about 8500 bytes: over 4096
    z += "big IN TXT \"" + std::to_string(i) + std::string(190, 'b') + "\"\n";
  for (int i = 0; i < 20; ++i) { // answer about 400 bytes, with the glue about 800
    z += "mx IN MX 10 m" + std::to_string(i) + "\n";
    z += "m" + std::to_string(i) + " IN A 192.0.2." + std::to_string(100 + i) + "\n";
  }
  for (int i = 0; i < 12; ++i) // c0 -> c1 -> ... -> c11 -> www
    z += "c" + std::to_string(i) + " IN CNAME " + (i == 11 ? "www" : "c" + std::to_string(i + 1)) +
         "\n";
  z += "loop1 IN CNAME loop2\nloop2 IN CNAME loop1\nself IN CNAME self\n"
       "dangling IN CNAME missing\n"
       "outside IN CNAME www.example.org.\n"
       "sub IN NS ns.sub\nns.sub IN A 192.0.2.7\ndeep.sub IN A 192.0.2.8\n"
       "tocut IN CNAME x.sub\n";
  return z;
}

/// The test zone, loaded once.
const example::dns_zone& test_zone() {
  static const example::dns_zone zone = [] {
    temp_file file(test_zone_text());
    std::string error;
    auto z = example::dns_zone::load(file.path(), "", error);
    if (!z)
      throw std::runtime_error("cannot load the test zone: " + error);
    return std::move(*z);
  }();
  return zone;
}

constexpr unsigned noerror = 0;
constexpr unsigned formerr = 1;
constexpr unsigned nxdomain = 3;
constexpr unsigned notimp = 4;
constexpr unsigned refused = 5;
constexpr unsigned badvers = 16;

const std::string soa_shown =
    "example.test. SOA ns1.example.test. hostmaster.example.test. 2024060101 7200 900 1209600 300";

using strings = std::vector<std::string>;

} // namespace

BOOST_FIXTURE_TEST_SUITE(dns_zone, atl::test::fd_leak_check)

// -- loading -------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(sample_zone_loads) {
  BOOST_TEST(sample().origin() == "example.test.");
  BOOST_TEST(sample().size() == 16u);
  // The multi-line SOA (parentheses and comments) parsed field by field.
  auto r = ask(sample(), make_query("example.test.", LDNS_RR_TYPE_SOA));
  BOOST_TEST(r.answer() == strings{soa_shown}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_record_is_authoritative_and_echoes_the_query) {
  query_options o;
  o.id = 0xBEEF;
  auto r = ask(sample(), make_query("www.example.test.", LDNS_RR_TYPE_A, o));
  BOOST_TEST(r.id() == 0xBEEF);
  BOOST_TEST(r.rcode() == noerror);
  BOOST_TEST(r.opcode() == 0u);
  BOOST_TEST(r.aa());
  BOOST_TEST(r.rd());
  BOOST_TEST(!r.ra());
  BOOST_TEST(!r.tc());
  BOOST_TEST(!r.edns());
  BOOST_TEST(r.question() == strings{"www.example.test. A"}, boost::test_tools::per_element());
  BOOST_TEST(r.answer() == strings{"www.example.test. A 192.0.2.80"},
             boost::test_tools::per_element());
  BOOST_TEST(r.authority().empty());
  BOOST_TEST(r.additional().empty());
}

BOOST_AUTO_TEST_CASE(rd_is_copied_and_ra_stays_clear) {
  query_options o;
  o.rd = false;
  auto r = ask(sample(), make_query("www.example.test.", LDNS_RR_TYPE_AAAA, o));
  BOOST_TEST(!r.rd());
  BOOST_TEST(!r.ra());
  BOOST_TEST(r.aa());
  BOOST_TEST(r.answer() == strings{"www.example.test. AAAA 2001:db8::80"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(names_compare_case_insensitively) {
  auto r = ask(sample(), make_query("WwW.ExAmPlE.TeSt.", LDNS_RR_TYPE_A));
  BOOST_TEST(r.rcode() == noerror);
  BOOST_TEST(r.aa());
  BOOST_TEST(r.question() == strings{"WwW.ExAmPlE.TeSt. A"}, boost::test_tools::per_element());
  BOOST_REQUIRE_EQUAL(r.answer().size(), 1u);
  BOOST_TEST(contains(r.answer()[0], "A 192.0.2.80"));
  auto apex = ask(sample(), make_query("EXAMPLE.TEST.", LDNS_RR_TYPE_AAAA));
  BOOST_TEST(apex.rcode() == noerror);
  BOOST_TEST(apex.answer().size() == 1u);
}

BOOST_AUTO_TEST_CASE(apex_records) {
  auto aaaa = ask(sample(), make_query("example.test.", LDNS_RR_TYPE_AAAA));
  BOOST_TEST(aaaa.answer() == strings{"example.test. AAAA 2001:db8::1"},
             boost::test_tools::per_element());
  auto txt = ask(sample(), make_query("example.test.", LDNS_RR_TYPE_TXT));
  BOOST_TEST(txt.answer() == strings{"example.test. TXT \"v=spf1 mx -all\""},
             boost::test_tools::per_element());
  // Quotes protect ';' and parentheses in the zone file.
  auto www_txt = ask(sample(), make_query("www.example.test.", LDNS_RR_TYPE_TXT));
  BOOST_TEST(www_txt.answer() == strings{"www.example.test. TXT \"hello; world\""
                                         " \"(not a comment)\""},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(ns_answer_has_glue) {
  auto r = ask(sample(), make_query("example.test.", LDNS_RR_TYPE_NS));
  BOOST_TEST(r.aa());
  BOOST_TEST(r.answer() == (strings{"example.test. NS ns1.example.test.",
                                    "example.test. NS ns2.example.test."}),
             boost::test_tools::per_element());
  BOOST_TEST(r.additional() ==
                 (strings{"ns1.example.test. A 192.0.2.53", "ns2.example.test. A 198.51.100.53",
                          "ns2.example.test. AAAA 2001:db8:1::53"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(mx_answer_has_glue) {
  auto r = ask(sample(), make_query("example.test.", LDNS_RR_TYPE_MX));
  BOOST_TEST(r.answer() == strings{"example.test. MX 10 mail.example.test."},
             boost::test_tools::per_element());
  BOOST_TEST(r.additional() == strings{"mail.example.test. A 192.0.2.25"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(cname_is_followed_to_the_target) {
  auto r = ask(sample(), make_query("web.example.test.", LDNS_RR_TYPE_A));
  BOOST_TEST(r.rcode() == noerror);
  BOOST_TEST(r.aa());
  BOOST_TEST(r.answer() == (strings{"web.example.test. CNAME www.example.test.",
                                    "www.example.test. A 192.0.2.80"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(cname_asked_for_is_not_followed) {
  auto r = ask(sample(), make_query("web.example.test.", LDNS_RR_TYPE_CNAME));
  BOOST_TEST(r.answer() == strings{"web.example.test. CNAME www.example.test."},
             boost::test_tools::per_element());
  auto any = ask(sample(), make_query("web.example.test.", LDNS_RR_TYPE_ANY));
  BOOST_TEST(any.answer() == strings{"web.example.test. CNAME www.example.test."},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(cname_to_a_name_without_the_type_is_nodata) {
  auto r = ask(sample(), make_query("web.example.test.", LDNS_RR_TYPE_MX));
  BOOST_TEST(r.rcode() == noerror);
  BOOST_TEST(r.answer() == strings{"web.example.test. CNAME www.example.test."},
             boost::test_tools::per_element());
  BOOST_TEST(r.authority() == strings{soa_shown}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(cname_chains_are_capped_at_eight_hops) {
  // c9 -> c10 -> c11 -> www: three hops, followed to the end.
  auto shortr = ask(test_zone(), make_query("c9.t.test.", LDNS_RR_TYPE_A));
  BOOST_TEST(shortr.answer() ==
                 (strings{"c9.t.test. CNAME c10.t.test.", "c10.t.test. CNAME c11.t.test.",
                          "c11.t.test. CNAME www.t.test.", "www.t.test. A 192.0.2.80"}),
             boost::test_tools::per_element());
  // c0 -> ... -> c11 -> www: eight targets are looked up (c1..c8); c8's CNAME is the last
  // record, for the client to follow further.
  auto longr = ask(test_zone(), make_query("c0.t.test.", LDNS_RR_TYPE_A));
  BOOST_TEST(longr.rcode() == noerror);
  auto answer = longr.answer();
  BOOST_REQUIRE_EQUAL(answer.size(), 9u);
  for (size_t i = 0; i < answer.size(); ++i)
    BOOST_TEST(answer[i] ==
               "c" + std::to_string(i) + ".t.test. CNAME c" + std::to_string(i + 1) + ".t.test.");
}

BOOST_AUTO_TEST_CASE(cname_loops_stop) {
  auto r = ask(test_zone(), make_query("loop1.t.test.", LDNS_RR_TYPE_A));
  BOOST_TEST(r.rcode() == noerror);
  BOOST_TEST(r.answer() == (strings{"loop1.t.test. CNAME loop2.t.test.",
                                    "loop2.t.test. CNAME loop1.t.test."}),
             boost::test_tools::per_element());
  auto self = ask(test_zone(), make_query("self.t.test.", LDNS_RR_TYPE_A));
  BOOST_TEST(self.answer() == strings{"self.t.test. CNAME self.t.test."},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(cname_outside_the_zone_is_not_followed) {
  auto r = ask(test_zone(), make_query("outside.t.test.", LDNS_RR_TYPE_A));
  BOOST_TEST(r.rcode() == noerror);
  BOOST_TEST(r.aa());
  BOOST_TEST(r.answer() == strings{"outside.t.test. CNAME www.example.org."},
             boost::test_tools::per_element());
  BOOST_TEST(r.authority().empty());
}

BOOST_AUTO_TEST_CASE(cname_to_a_missing_name_is_nxdomain) {
  // RFC 6604: the rcode is about the last name of the chain.
  auto r = ask(test_zone(), make_query("dangling.t.test.", LDNS_RR_TYPE_A));
  BOOST_TEST(r.rcode() == nxdomain);
  BOOST_TEST(r.aa());
  BOOST_TEST(r.answer() == strings{"dangling.t.test. CNAME missing.t.test."},
             boost::test_tools::per_element());
  BOOST_REQUIRE_EQUAL(r.authority().size(), 1u);
  BOOST_TEST(contains(r.authority()[0], "t.test. SOA"));
}

BOOST_AUTO_TEST_CASE(nodata_has_the_soa) {
  auto r = ask(sample(), make_query("www.example.test.", LDNS_RR_TYPE_MX));
  BOOST_TEST(r.rcode() == noerror);
  BOOST_TEST(r.aa());
  BOOST_TEST(r.answer().empty());
  BOOST_TEST(r.authority() == strings{soa_shown}, boost::test_tools::per_element());
  // RFC 2308: the SOA's TTL in a negative answer is min(its TTL, its MINIMUM field).
  auto* soa = ldns_rr_list_rr(ldns_pkt_authority(r.pkt.get()), 0);
  BOOST_TEST(ldns_rr_ttl(soa) == 300u);
}

BOOST_AUTO_TEST_CASE(nxdomain_has_the_soa) {
  for (auto name : {"nothere.example.test.", "x.www.example.test.", "c.b.example.test."}) {
    BOOST_TEST_CONTEXT(name) {
      auto r = ask(sample(), make_query(name, LDNS_RR_TYPE_A));
      BOOST_TEST(r.rcode() == nxdomain);
      BOOST_TEST(r.aa());
      BOOST_TEST(r.answer().empty());
      BOOST_TEST(r.authority() == strings{soa_shown}, boost::test_tools::per_element());
    }
  }
}

BOOST_AUTO_TEST_CASE(empty_non_terminal_is_nodata) {
  auto ent = ask(sample(), make_query("b.example.test.", LDNS_RR_TYPE_A));
  BOOST_TEST(ent.rcode() == noerror);
  BOOST_TEST(ent.aa());
  BOOST_TEST(ent.answer().empty());
  BOOST_TEST(ent.authority() == strings{soa_shown}, boost::test_tools::per_element());
  auto leaf = ask(sample(), make_query("a.b.example.test.", LDNS_RR_TYPE_A));
  BOOST_TEST(leaf.answer() == strings{"a.b.example.test. A 192.0.2.99"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(any_returns_every_record_of_the_name) {
  auto r = ask(sample(), make_query("www.example.test.", LDNS_RR_TYPE_ANY));
  BOOST_TEST(r.rcode() == noerror);
  BOOST_TEST(r.aa());
  BOOST_TEST(sorted(ldns_pkt_answer(r.pkt.get())) ==
                 (strings{"www.example.test. A 192.0.2.80", "www.example.test. AAAA 2001:db8::80",
                          "www.example.test. TXT \"hello; world\" \"(not a comment)\""}),
             boost::test_tools::per_element());
  auto apex = ask(sample(), make_query("example.test.", LDNS_RR_TYPE_ANY));
  BOOST_TEST(apex.answer().size() == 7u);
}

BOOST_AUTO_TEST_CASE(names_outside_the_zone_are_refused) {
  for (auto name : {"www.example.org.", "test.", ".", "notexample.test.", "example.test.x."}) {
    BOOST_TEST_CONTEXT(name) {
      auto r = ask(sample(), make_query(name, LDNS_RR_TYPE_A));
      BOOST_TEST(r.rcode() == refused);
      BOOST_TEST(!r.aa());
      BOOST_TEST(r.answer().empty());
      BOOST_TEST(r.authority().empty());
      BOOST_TEST(r.question().size() == 1u);
    }
  }
}

BOOST_AUTO_TEST_CASE(classes_other_than_in_and_any_are_refused) {
  query_options o;
  for (auto cls : {LDNS_RR_CLASS_CH, LDNS_RR_CLASS_HS, LDNS_RR_CLASS_NONE,
                   static_cast<ldns_rr_class>(0xFFFF)}) {
    BOOST_TEST_CONTEXT("class " << cls) {
      o.qclass = cls;
      auto r = ask(sample(), make_query("www.example.test.", LDNS_RR_TYPE_A, o));
      BOOST_TEST(r.rcode() == refused);
      BOOST_TEST(!r.aa());
      BOOST_TEST(r.answer().empty());
    }
  }
  o.qclass = LDNS_RR_CLASS_ANY;
  auto any = ask(sample(), make_query("www.example.test.", LDNS_RR_TYPE_A, o));
  BOOST_TEST(any.rcode() == noerror);
  BOOST_TEST(any.aa());
  BOOST_TEST(any.answer() == strings{"www.example.test. A 192.0.2.80"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(zone_transfers_are_refused) {
  for (auto type : {LDNS_RR_TYPE_AXFR, LDNS_RR_TYPE_IXFR})
    BOOST_TEST(ask(sample(), make_query("example.test.", type)).rcode() == refused);
}

BOOST_AUTO_TEST_CASE(other_opcodes_are_not_implemented) {
  for (int opcode : {1, 2, 4, 5, 6, 15}) {
    BOOST_TEST_CONTEXT("opcode " << opcode) {
      query_options o;
      o.opcode = static_cast<uint8_t>(opcode);
      o.id = static_cast<uint16_t>(0x4000 + opcode);
      auto r = ask(sample(), make_query("www.example.test.", LDNS_RR_TYPE_A, o));
      BOOST_TEST(r.rcode() == notimp);
      BOOST_TEST(r.opcode() == static_cast<unsigned>(opcode));
      BOOST_TEST(r.id() == o.id);
      BOOST_TEST(!r.aa());
      BOOST_TEST(r.answer().empty());
    }
  }
  // Whatever follows the header of an unknown opcode, the answer is NOTIMP.
  auto r = ask(sample(), header(7, 5 << 11, 3) + "\xff\xfe garbage");
  BOOST_TEST(r.rcode() == notimp);
  BOOST_TEST(r.opcode() == 5u);
  BOOST_TEST(r.question().empty());
}

BOOST_AUTO_TEST_CASE(responses_and_runts_get_no_reply) {
  BOOST_TEST(!sample().answer(""));
  BOOST_TEST(!sample().answer(std::string(11, '\0')));
  auto q = make_query("www.example.test.", LDNS_RR_TYPE_A);
  BOOST_TEST(!sample().answer(q.substr(0, 11)));
  q[2] = static_cast<char>(q[2] | 0x80); // QR: a response
  BOOST_TEST(!sample().answer(q));
  BOOST_TEST(!sample().answer(header(1, 0x8000, 0)));
}

BOOST_AUTO_TEST_CASE(malformed_queries_get_formerr) {
  const std::string www = wire_name("www.example.test.");
  const std::string a_in = u16(1) + u16(1);
  struct bad_case {
    const char* what;
    std::string wire;
    bool question_echoed;
  };
  std::string long_name;
  for (int i = 0; i < 5; ++i)
    long_name += static_cast<char>(63) + std::string(63, 'x');
  long_name += '\0';
  const std::vector<bad_case> cases = {
      {"no question", header(1, 0x0100, 0), false},
      {"two questions", header(2, 0, 2) + www + a_in + www + a_in, false},
      {"truncated name", header(3, 0, 1) + www.substr(0, 7), false},
      {"no type and class", header(4, 0, 1) + www, false},
      {"half the class", header(5, 0, 1) + www + u16(1) + "\x01", false},
      {"pointer to itself", header(6, 0, 1) + "\xc0\x0c" + a_in, false},
      {"pointer loop",
       header(7, 0, 1) +
           std::string("\x01"
                       "a\xc0\x0c",
                       4) +
           a_in,
       false},
      {"pointer forward", header(8, 0, 1) + "\xc0\x20" + a_in + std::string(20, '\0'), false},
      {"pointer into the header", header(9, 0, 1) + "\xc0\x02" + a_in, false},
      {"pointer past the end", header(10, 0, 1) + "\xc0", false},
      {"extended label type", header(11, 0, 1) + "\x41x" + std::string(1, '\0') + a_in, false},
      {"name over 255 bytes", header(12, 0, 1) + long_name + a_in, false},
      {"trailing bytes", header(13, 0, 1) + www + a_in + "junk", true},
      {"missing answer record", header(14, 0, 1, 1) + www + a_in, true},
      {"two OPT records",
       header(15, 0, 1, 0, 0, 2) + www + a_in + opt_record(1232) + opt_record(512), true},
      {"OPT in the answer section", header(16, 0, 1, 1) + www + a_in + opt_record(1232), true},
      {"OPT not at the root", header(17, 0, 1, 0, 0, 1) + www + a_in + "\x01x" + opt_record(1232),
       true},
      {"bad EDNS option",
       header(18, 0, 1, 0, 0, 1) + www + a_in + std::string(1, '\0') + u16(41) + u16(1232) +
           std::string(4, '\0') + u16(3) + u16(10) + "\x01",
       true},
      {"OPT as the type asked", header(19, 0, 1) + www + u16(41) + u16(1), true},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.what) {
      auto r = ask(sample(), c.wire);
      BOOST_TEST(r.rcode() == formerr);
      BOOST_TEST(r.id() ==
                 ((static_cast<uint8_t>(c.wire[0]) << 8) | static_cast<uint8_t>(c.wire[1])));
      BOOST_TEST(r.opcode() == 0u);
      BOOST_TEST(!r.aa());
      BOOST_TEST(r.answer().empty());
      BOOST_TEST(r.question().size() == (c.question_echoed ? 1u : 0u));
    }
  }
  // RD is copied into a FORMERR too.
  BOOST_TEST(ask(sample(), header(1, 0x0100, 0)).rd());
}

BOOST_AUTO_TEST_CASE(compressed_question_names_are_understood) {
  // Unusual but legal: an answer-section record whose name points into the question.
  const std::string www = wire_name("www.example.test.");
  std::string q = header(21, 0, 1, 1) + www + u16(1) + u16(1) + "\xc0\x0c" + u16(1) + u16(1) +
                  std::string(4, '\0') + u16(4) + std::string(4, '\x01');
  auto r = ask(sample(), q);
  BOOST_TEST(r.rcode() == noerror);
  BOOST_TEST(r.answer() == strings{"www.example.test. A 192.0.2.80"},
             boost::test_tools::per_element());
}

// -- EDNS and truncation -------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(edns_query_gets_an_opt_record) {
  auto r = ask(sample(), make_query("www.example.test.", LDNS_RR_TYPE_A, with_edns(4096)));
  BOOST_TEST(r.rcode() == noerror);
  BOOST_TEST(r.edns());
  BOOST_TEST(ldns_pkt_edns_udp_size(r.pkt.get()) == 1232u);
  BOOST_TEST(ldns_pkt_edns_version(r.pkt.get()) == 0u);
  // ...also on error replies.
  auto refused_r = ask(sample(), make_query("www.example.org.", LDNS_RR_TYPE_A, with_edns(1232)));
  BOOST_TEST(refused_r.rcode() == refused);
  BOOST_TEST(refused_r.edns());
  auto plain = ask(sample(), make_query("www.example.test.", LDNS_RR_TYPE_A));
  BOOST_TEST(!plain.edns());
}

BOOST_AUTO_TEST_CASE(unknown_edns_version_gets_badvers) {
  auto o = with_edns(1232);
  o.edns_version = 1;
  auto r = ask(sample(), make_query("www.example.test.", LDNS_RR_TYPE_A, o));
  BOOST_TEST(r.rcode() == badvers);
  BOOST_TEST(r.edns());
  BOOST_TEST(ldns_pkt_edns_version(r.pkt.get()) == 0u);
  BOOST_TEST(r.answer().empty());
}

BOOST_AUTO_TEST_CASE(large_answer_is_truncated_to_512_without_edns) {
  auto r = ask(test_zone(), make_query("medium.t.test.", LDNS_RR_TYPE_TXT));
  BOOST_TEST(r.rcode() == noerror);
  BOOST_TEST(r.tc());
  BOOST_TEST(r.aa());
  BOOST_TEST(r.wire.size() <= 512u);
  BOOST_TEST(r.answer().size() < 8u);
  BOOST_TEST(r.question().size() == 1u);
}

BOOST_AUTO_TEST_CASE(edns_size_raises_the_limit) {
  for (int size : {1232, 4096, 65535}) {
    BOOST_TEST_CONTEXT("advertised " << size) {
      auto r = ask(test_zone(), make_query("medium.t.test.", LDNS_RR_TYPE_TXT,
                                           with_edns(static_cast<uint16_t>(size))));
      BOOST_TEST(!r.tc());
      BOOST_TEST(r.wire.size() > 512u);
      BOOST_TEST(r.answer().size() == 8u);
      BOOST_TEST(r.edns());
    }
  }
}

BOOST_AUTO_TEST_CASE(edns_size_is_clamped_between_512_and_4096) {
  // A client advertising less than 512 still gets 512.
  auto tiny = ask(test_zone(), make_query("medium.t.test.", LDNS_RR_TYPE_TXT, with_edns(100)));
  BOOST_TEST(tiny.tc());
  BOOST_TEST(tiny.wire.size() <= 512u);
  BOOST_TEST(tiny.wire.size() > 400u); // what fits in 512 was kept
  // A client's own limit between 512 and 4096 is honoured.
  auto mid = ask(test_zone(), make_query("medium.t.test.", LDNS_RR_TYPE_TXT, with_edns(700)));
  BOOST_TEST(mid.tc());
  BOOST_TEST(mid.wire.size() <= 700u);
  BOOST_TEST(mid.wire.size() > 512u);
  // Beyond 4096, 4096.
  auto big = ask(test_zone(), make_query("big.t.test.", LDNS_RR_TYPE_TXT, with_edns(65535)));
  BOOST_TEST(big.tc());
  BOOST_TEST(big.wire.size() <= 4096u);
  BOOST_TEST(big.wire.size() > 3500u);
  BOOST_TEST(big.answer().size() > 0u);
  BOOST_TEST(big.answer().size() < 40u);
  BOOST_TEST(big.edns());
  auto big_plain = ask(test_zone(), make_query("big.t.test.", LDNS_RR_TYPE_TXT));
  BOOST_TEST(big_plain.tc());
  BOOST_TEST(big_plain.wire.size() <= 512u);
}

BOOST_AUTO_TEST_CASE(additional_records_are_dropped_before_answers) {
  // 20 MX records fit in 512 bytes, their 20 glue records do not: the glue goes, without TC.
  auto plain = ask(test_zone(), make_query("mx.t.test.", LDNS_RR_TYPE_MX));
  BOOST_TEST(!plain.tc());
  BOOST_TEST(plain.wire.size() <= 512u);
  BOOST_TEST(plain.answer().size() == 20u);
  BOOST_TEST(plain.additional().empty());
  auto edns = ask(test_zone(), make_query("mx.t.test.", LDNS_RR_TYPE_MX, with_edns(1232)));
  BOOST_TEST(!edns.tc());
  BOOST_TEST(edns.answer().size() == 20u);
  BOOST_TEST(edns.additional().size() == 20u);
}

// -- delegations ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(names_below_a_delegation_get_a_referral) {
  for (auto name : {"sub.t.test.", "x.sub.t.test.", "deep.sub.t.test."}) {
    BOOST_TEST_CONTEXT(name) {
      auto r = ask(test_zone(), make_query(name, LDNS_RR_TYPE_A));
      BOOST_TEST(r.rcode() == noerror);
      BOOST_TEST(!r.aa());
      BOOST_TEST(r.answer().empty());
      BOOST_TEST(r.authority() == strings{"sub.t.test. NS ns.sub.t.test."},
                 boost::test_tools::per_element());
      BOOST_TEST(r.additional() == strings{"ns.sub.t.test. A 192.0.2.7"},
                 boost::test_tools::per_element());
    }
  }
  auto cname = ask(test_zone(), make_query("tocut.t.test.", LDNS_RR_TYPE_A));
  BOOST_TEST(cname.aa());
  BOOST_TEST(cname.rcode() == noerror);
  BOOST_TEST(cname.answer() == strings{"tocut.t.test. CNAME x.sub.t.test."},
             boost::test_tools::per_element());
}

// -- loading errors ------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(syntax_error_names_the_line) {
  auto error = load_error("$ORIGIN bad.test.\n"
                          "$TTL 300\n"
                          "@ IN SOA ns1 hostmaster 1 2 3 4 5\n"
                          "; a comment\n"
                          "\n"
                          "www IN A 192.0.2.300\n"
                          "ok IN A 192.0.2.1\n");
  BOOST_TEST(contains(error, ":6: "));
  BOOST_TEST(contains(error, "www IN A 192.0.2.300"));
  // Line numbers count the lines inside parentheses.
  auto multi = load_error("$ORIGIN bad.test.\n"
                          "@ IN SOA ns1 hostmaster (\n"
                          "  1 2 3 4 5 )\n"
                          "mx IN MX ( 10 ; no exchange\n"
                          "  )\n");
  BOOST_TEST(contains(multi, ":4: "));
}

BOOST_AUTO_TEST_CASE(missing_file_fails_clearly) {
  std::string error;
  const std::string path = "/nonexistent/dir/none.zone";
  auto z = example::dns_zone::load(path, "", error);
  BOOST_TEST(!z);
  BOOST_TEST(contains(error, path));
  BOOST_TEST(contains(error, "No such file or directory"));
  auto dir = example::dns_zone::load(ATOLL_EXAMPLES_DIR, "", error);
  BOOST_TEST(!dir);
  BOOST_TEST(contains(error, "directory"));
  // A device would be read forever (/dev/zero), a FIFO would block the start until a writer
  // comes: refused before they are opened.
  auto device = example::dns_zone::load("/dev/zero", "", error);
  BOOST_TEST(!device);
  BOOST_TEST(contains(error, "/dev/zero: is not a regular file"), error);
  auto fifo = (std::filesystem::temp_directory_path() /
               ("dns_zone_test_fifo_" + std::to_string(::getpid())))
                  .string();
  BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto from_fifo = example::dns_zone::load(fifo, "", error);
  ::unlink(fifo.c_str());
  BOOST_TEST(!from_fifo);
  BOOST_TEST(contains(error, "is not a regular file"), error);
}

BOOST_AUTO_TEST_CASE(structural_errors_are_reported) {
  const std::string soa = "$ORIGIN s.test.\n@ IN SOA ns hm 1 2 3 4 5\n";
  BOOST_TEST(contains(load_error("$ORIGIN s.test.\nwww IN A 192.0.2.1\n"), "no SOA record"));
  BOOST_TEST(contains(load_error(soa + "www.other.test. IN A 192.0.2.1\n"), ":3: "));
  BOOST_TEST(contains(load_error(soa + "www.other.test. IN A 192.0.2.1\n"), "outside the zone"));
  BOOST_TEST(contains(load_error(soa + "@ IN SOA ns hm 2 2 3 4 5\n"), "second SOA"));
  auto cname = load_error(soa + "web IN CNAME www\nweb IN A 192.0.2.1\n");
  BOOST_TEST(contains(cname, ":3: "));
  BOOST_TEST(contains(cname, "CNAME"));
  BOOST_TEST(contains(load_error(soa + "web IN CNAME a\nweb IN CNAME b\n"), "CNAME"));
  BOOST_TEST(contains(load_error(soa + "www IN BOGUS 1\n"), ":3: "));
  BOOST_TEST(contains(load_error(soa + "www IN A ( 192.0.2.1\n"), ":3: '(' not closed"));
  BOOST_TEST(contains(load_error(soa + "www IN A 192.0.2.1 )\n"), ":3: ')' without"));
  BOOST_TEST(contains(load_error(soa + "www IN TXT \"open\n"), ":3: quoted string"));
  BOOST_TEST(contains(load_error(soa + "www CH A 192.0.2.1\n"), "class IN"));
  BOOST_TEST(contains(load_error(soa + "$INCLUDE other.zone\n"), "$INCLUDE is not supported"));
  BOOST_TEST(contains(load_error(soa + "$TTL soon\n"), ":3: $TTL"));
  // TTLs above 2^31 - 1 (RFC 2181) are refused, not wrapped around 2^32 (4294967297 was 1).
  BOOST_TEST(contains(load_error(soa + "$TTL 2147483648\n"), ":3: $TTL: TTL '2147483648' is out"));
  BOOST_TEST(contains(load_error(soa + "$TTL 10000000w\n"), "out of range"));
  BOOST_TEST(contains(load_error(soa + "www 4294967297 IN A 192.0.2.1\n"), ":3: TTL '4294967297'"));
  BOOST_TEST(contains(load_error(soa + "www 99999999999999999999 IN A 192.0.2.1\n"), "out of range"));
  // ldns reads a TTL up to its first stray character (4294967297x was 1 too).
  BOOST_TEST(contains(load_error(soa + "www 4294967297x IN A 192.0.2.1\n"),
                      ":3: TTL '4294967297x' is not a time value"));
  BOOST_TEST(contains(load_error(soa + " 3551w IN A 192.0.2.1\n"), "out of range"));
  BOOST_TEST(contains(load_error(soa + "$GENERATE 1-2 x A 1.2.3.4\n"), "unknown directive"));
  BOOST_TEST(contains(load_error("@ IN SOA ns hm 1 2 3 4 5\n"), ":1: no origin"));
  BOOST_TEST(contains(load_error(std::string("x\0y", 3), "z.test"), "NUL byte"));
}

BOOST_AUTO_TEST_CASE(origin_comes_from_the_file_the_caller_or_the_first_owner) {
  const std::string body = "@ IN SOA ns hm 1 2 3 4 5\nwww IN A 192.0.2.1\n";
  auto given = load_text(body, "given.test");
  BOOST_TEST(given.origin() == "given.test.");
  auto r = ask(given, make_query("www.given.test.", LDNS_RR_TYPE_A));
  BOOST_TEST(r.answer() == strings{"www.given.test. A 192.0.2.1"},
             boost::test_tools::per_element());
  // $ORIGIN in the file wins over the default.
  auto file = load_text("$ORIGIN file.test.\n" + body, "given.test.");
  BOOST_TEST(file.origin() == "file.test.");
  // No origin anywhere: an absolute first owner serves.
  auto first = load_text("first.test. IN SOA ns hm 1 2 3 4 5\nwww IN A 192.0.2.1\n");
  BOOST_TEST(first.origin() == "first.test.");
  BOOST_TEST(ask(first, make_query("ns.first.test.", LDNS_RR_TYPE_A)).rcode() == nxdomain);
  BOOST_TEST(ask(first, make_query("www.first.test.", LDNS_RR_TYPE_A)).answer().size() == 1u);
  // A relative $ORIGIN is appended to the current one.
  auto rel = load_text("$ORIGIN test.\n$ORIGIN rel\n" + body);
  BOOST_TEST(rel.origin() == "rel.test.");
}

BOOST_AUTO_TEST_CASE(duplicates_are_served_once_and_ttls_apply) {
  auto z = load_text("$ORIGIN d.test.\n$TTL 1h\n@ IN SOA ns hm 1 2 3 4 5\n"
                     "www IN A 192.0.2.1\nwww IN A 192.0.2.1\nWWW 1h IN A 192.0.2.1\n"
                     "short 60 IN A 192.0.2.2\n");
  BOOST_TEST(z.size() == 3u);
  auto r = ask(z, make_query("www.d.test.", LDNS_RR_TYPE_A));
  BOOST_REQUIRE_EQUAL(r.answer().size(), 1u);
  BOOST_TEST(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(r.pkt.get()), 0)) == 3600u);
  auto s = ask(z, make_query("short.d.test.", LDNS_RR_TYPE_A));
  BOOST_REQUIRE_EQUAL(s.answer().size(), 1u);
  BOOST_TEST(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(s.pkt.get()), 0)) == 60u);
}

BOOST_AUTO_TEST_CASE(ttls_up_to_the_largest_load) {
  auto z = load_text("$ORIGIN t.test.\n$TTL 2147483647\n@ IN SOA ns hm 1 2 3 4 5\n"
                     "a IN A 192.0.2.1\nb 3550w4d IN A 192.0.2.2\nc 1h30m IN A 192.0.2.3\n"
                     "4294967297 IN A 192.0.2.4\n");
  auto ttl_of = [&](const std::string& name) {
    auto r = ask(z, make_query(name, LDNS_RR_TYPE_A));
    BOOST_REQUIRE_EQUAL(r.answer().size(), 1u);
    return ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(r.pkt.get()), 0));
  };
  BOOST_TEST(ttl_of("a.t.test.") == 2147483647u);
  BOOST_TEST(ttl_of("b.t.test.") == 3550u * 604800u + 4u * 86400u);
  BOOST_TEST(ttl_of("c.t.test.") == 5400u);
  BOOST_TEST(ttl_of("4294967297.t.test.") == 2147483647u); // an owner, not a TTL
}

BOOST_AUTO_TEST_CASE(a_name_with_thousands_of_records_loads_without_its_duplicates) {
  // Duplicates are found by hashing (a pairwise comparison took 2.5 s for 3,000 records at
  // one name); names in rdata compare without case, as ldns_rr_compare does.
  std::string text = "$ORIGIN big.test.\n@ IN SOA ns hm 1 2 3 4 5\n"
                     "@ IN NS ns1.big.test.\n@ IN NS NS1.BIG.TEST.\n@ 60 IN NS ns2\n";
  for (int i = 0; i < 3000; ++i)
    text += "many IN A 10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250) + "\n";
  text += "many IN A 10.0.0.0\nmany IN A 10.0.11.249\n";
  auto z = load_text(text);
  BOOST_TEST(z.size() == 1u + 2u + 3000u);
  auto ns = ask(z, make_query("big.test.", LDNS_RR_TYPE_NS));
  BOOST_TEST(ns.answer().size() == 2u);
}

BOOST_AUTO_TEST_CASE(zone_is_movable) {
  auto a = load_text("$ORIGIN m.test.\n@ IN SOA ns hm 1 2 3 4 5\nwww IN A 192.0.2.1\n");
  example::dns_zone b(std::move(a));
  BOOST_TEST(b.origin() == "m.test.");
  BOOST_TEST(ask(b, make_query("www.m.test.", LDNS_RR_TYPE_A)).answer().size() == 1u);
  auto c = load_text("$ORIGIN n.test.\n@ IN SOA ns hm 1 2 3 4 5\n");
  c = std::move(b);
  BOOST_TEST(c.origin() == "m.test.");
  BOOST_TEST(c.size() == 2u);
  BOOST_TEST(ask(c, make_query("www.m.test.", LDNS_RR_TYPE_A)).answer().size() == 1u);
}

// -- robustness ----------------------------------------------------------------------------------

namespace {

/// Checks one reply to fuzzed input; returns what is wrong ("" if nothing).
std::string check_reply(const example::dns_zone& zone, const std::string& query) {
  auto wire = zone.answer(query);
  bool must_be_silent = query.size() < 12 || (static_cast<uint8_t>(query[2]) & 0x80) != 0;
  if (!wire)
    return must_be_silent ? "" : "no reply to a query";
  if (must_be_silent)
    return "a reply to a response or a runt";
  if (wire->size() < 12 || wire->compare(0, 2, query, 0, 2) != 0)
    return "ID not echoed";
  if (!(static_cast<uint8_t>((*wire)[2]) & 0x80))
    return "QR not set";
  if (wire->size() > 4096)
    return "reply over 4096 bytes";
  ldns_pkt* raw = nullptr;
  auto status = ldns_wire2pkt(&raw, reinterpret_cast<const uint8_t*>(wire->data()), wire->size());
  pkt_ptr pkt(raw);
  if (status != LDNS_STATUS_OK)
    return std::string("reply does not parse: ") + ldns_get_errorstr_by_id(status);
  if (!ldns_pkt_edns(pkt.get()) && wire->size() > 512)
    return "reply over 512 bytes without EDNS";
  return "";
}

/// Hex dump for failure messages.
std::string hex(const std::string& bytes) {
  std::string out;
  char buf[4];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    out += buf;
  }
  return out;
}

} // namespace

BOOST_AUTO_TEST_CASE(random_bytes_never_crash) {
  std::mt19937 rng(20240601);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<size_t> length(0, 600);
  int failures = 0;
  int replies = 0;
  std::string first_failure;
  for (int i = 0; i < 10000; ++i) {
    std::string q(length(rng), '\0');
    for (auto& c : q)
      c = static_cast<char>(byte(rng));
    if (i % 2 == 0 && q.size() > 2)
      q[2] = static_cast<char>(q[2] & 0x7F); // mostly queries, to get past the QR check
    if (i % 4 == 0 && q.size() > 5) {        // and often one question
      q[4] = 0;
      q[5] = 1;
    }
    auto problem = check_reply(sample(), q);
    replies += sample().answer(q).has_value();
    if (!problem.empty() && failures++ == 0)
      first_failure = problem + " for " + hex(q);
  }
  BOOST_TEST_MESSAGE(replies << " replies to 10000 random datagrams");
  BOOST_CHECK_MESSAGE(failures == 0, failures << " bad replies, the first: " << first_failure);
  BOOST_TEST(replies > 2000);
}

BOOST_AUTO_TEST_CASE(mutated_queries_never_crash) {
  std::vector<std::string> seeds;
  for (auto name : {"www.example.test.", "web.example.test.", "example.test.", "b.example.test.",
                    "nothere.example.test.", "www.example.org."})
    for (auto type : {LDNS_RR_TYPE_A, LDNS_RR_TYPE_MX, LDNS_RR_TYPE_ANY, LDNS_RR_TYPE_NS}) {
      seeds.push_back(make_query(name, type));
      seeds.push_back(make_query(name, type, with_edns(4096)));
    }
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  int failures = 0;
  std::string first_failure;
  for (int i = 0; i < 10000; ++i) {
    std::string q = seeds[static_cast<size_t>(i) % seeds.size()];
    int mutations = 1 + i % 4;
    for (int m = 0; m < mutations && !q.empty(); ++m) {
      size_t at = std::uniform_int_distribution<size_t>(0, q.size() - 1)(rng);
      switch (byte(rng) % 6) {
        case 0: q[at] = static_cast<char>(q[at] ^ (1 << (byte(rng) % 8))); break;
        case 1: q[at] = static_cast<char>(byte(rng)); break;
        case 2: q.resize(at); break;
        case 3: q.insert(at, 1, static_cast<char>(byte(rng))); break;
        case 4: q += q.substr(at); break;
        case 5: q[at] = static_cast<char>(0xC0 | (byte(rng) & 0x3F)); break; // a pointer
      }
    }
    auto problem = check_reply(sample(), q);
    if (!problem.empty() && failures++ == 0)
      first_failure = problem + " for " + hex(q);
  }
  BOOST_CHECK_MESSAGE(failures == 0, failures << " bad replies, the first: " << first_failure);
}

BOOST_AUTO_TEST_CASE(concurrent_answers_agree) {
  std::vector<std::string> queries;
  for (auto name : {"www.example.test.", "web.example.test.", "example.test.", "b.example.test.",
                    "nothere.example.test.", "www.example.org."})
    for (auto type : {LDNS_RR_TYPE_A, LDNS_RR_TYPE_MX, LDNS_RR_TYPE_ANY, LDNS_RR_TYPE_NS})
      queries.push_back(make_query(name, type, with_edns(1232)));
  std::vector<std::optional<std::string>> expected;
  for (auto& q : queries)
    expected.push_back(sample().answer(q));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 200; ++round)
        for (size_t i = 0; i < queries.size(); ++i) {
          size_t k = (i + static_cast<size_t>(t) * 5) % queries.size();
          if (sample().answer(queries[k]) != expected[k])
            ++mismatches;
        }
    });
  for (auto& th : threads)
    th.join();
  BOOST_TEST(mismatches.load() == 0);
}

BOOST_AUTO_TEST_SUITE_END()
