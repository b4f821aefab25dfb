// dns_zone: a small authoritative DNS responder for one zone, built on libldns.
//
// The zone is read once from an RFC 1035 master file and is read-only afterwards, so `answer`
// may be called from any number of threads at once. The module knows nothing about sockets or
// actors: the `dns_server` example feeds it datagrams and sends back what it returns.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace example {

/// An authoritative zone loaded from a standard zone file.
///
/// Supported in the file: `$ORIGIN`, `$TTL`, comments, parentheses, quoted strings, `@`,
/// relative names, omitted owners, TTLs and classes, and every record type ldns can parse
/// (SOA, NS, A, AAAA, CNAME, MX, TXT, SRV, CAA, ...). Only class IN is accepted. `$INCLUDE`,
/// wildcards and DNAME are not supported (a `*` label is an ordinary name). NS records below
/// the apex are delegations: names at or under them get a referral.
class dns_zone {
public:
  /// Loads `path`, an RFC 1035 master file. `default_origin` is the origin used until the file
  /// sets one with `$ORIGIN` (may be empty: then the first record's owner must be absolute and
  /// becomes the origin). On failure returns nullopt and sets `error` to a message of the form
  /// `PATH:LINE: what is wrong` (or `PATH: ...` when no line applies).
  static std::optional<dns_zone> load(const std::string& path, const std::string& default_origin,
                                      std::string& error);

  /// Moves a zone; the moved-from zone may only be destroyed or assigned to.
  dns_zone(dns_zone&&) noexcept;

  /// Move-assigns a zone; the moved-from zone may only be destroyed or assigned to.
  dns_zone& operator=(dns_zone&&) noexcept;

  /// Frees the zone's records.
  ~dns_zone();

  /// The reply (DNS wire format) to one query datagram, or nullopt when the datagram must go
  /// unanswered (shorter than a header, or a response). Never throws, whatever the bytes.
  /// Safe to call concurrently on the same zone.
  std::optional<std::string> answer(std::string_view query) const;

  /// The zone's origin (the owner of its SOA record), e.g. "example.test.".
  std::string origin() const;

  /// The number of records in the zone, the SOA included (duplicates are counted once).
  size_t size() const;

private:
  /// The records, their index and the query logic (defined in dns_zone.cpp).
  struct impl;

  /// Wraps a loaded implementation.
  explicit dns_zone(std::unique_ptr<impl> pimpl);

  std::unique_ptr<impl> impl_;
};

} // namespace example
