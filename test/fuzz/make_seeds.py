#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz targets into
test/fuzz/corpus/<target>/seed-*. Run it again after changing a target's
input format; the other corpus files are inputs the fuzzer found (merged with
-merge=1, named by their SHA-1).

  python3 test/fuzz/make_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("latin-1")
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


class Provider:
    """Builds input for LLVM's FuzzedDataProvider when a target reads only
    integers (taken from the end of the input): records the values in the
    order the target consumes them and lays the bytes out backwards."""

    def __init__(self):
        self.consumed = []  # bytes in the order they are consumed

    def in_range(self, lo, hi, value):
        span = hi - lo
        nbytes = 0
        while nbytes < 8 and (span >> (8 * nbytes)) > 0:
            nbytes += 1
        rel = value - lo
        # The first byte consumed is the most significant one.
        for i in reversed(range(nbytes)):
            self.consumed.append((rel >> (8 * i)) & 0xFF)

    def boolean(self, value):
        self.consumed.append(1 if value else 0)

    def data(self, front=b""):
        return bytes(front) + bytes(reversed(self.consumed))


# -- fuzz_endpoint ----------------------------------------------------------
# First byte: '0' parse, '1' bind_address::ip, '2' bind_address::local, '3'
# make_endpoint; the rest is the text (or, for '3', the socket address).

parse_texts = [
    "any", "any6", "loopback", "loopback6", "localhost", "0.0.0.0", "::",
    "127.0.0.1", "::1", "10.1.2.3", "192.168.0.255", "255.255.255.255",
    "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "fe80::1", "::ffff:1.2.3.4",
    "2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001", "[::1]",
    "::1%lo", "1::2::3", "unix:/run/x.sock", "unix:", "unix:relative",
    "unix:" + "x" * 107, "unix:" + "x" * 108, "not-an-address", "",
    " 1.2.3.4", "1.2.3.4 ", "127.0.0.1\0junk", "unix:\0abstract", "ANY",
    "Unix:/x", "host:80", "127.0.0.1:80",
]
for i, text in enumerate(parse_texts):
    write("fuzz_endpoint", "parse-%02d" % i, "0" + text)
for i, text in enumerate(["10.0.0.1", "::", "", "1.2.3.4\0", "::1", "x"]):
    write("fuzz_endpoint", "ip-%02d" % i, "1" + text)
for i, text in enumerate(["/tmp/a.sock", "", "x" * 107, "x" * 108, "a\0b", "\0abstract"]):
    write("fuzz_endpoint", "local-%02d" % i, "2" + text)


def sockaddr(family_choice, length, short_length, raw):
    p = Provider()
    p.in_range(0, 3, family_choice)
    p.in_range(0, 2**32 - 1, length)
    p.boolean(short_length)
    return b"3" + p.data(raw)


AF_INET, AF_INET6, AF_UNIX = 2, 10, 1
sin = struct.pack("=HH4s8x", AF_INET, 0x901F, bytes([127, 0, 0, 1]))
sin6 = struct.pack("=HHI16sI", AF_INET6, 0x901F, 0, bytes(15) + b"\x01", 0)
sun = struct.pack("=H", AF_UNIX) + b"/run/app.sock\0"
write("fuzz_endpoint", "endpoint-v4", sockaddr(0, 16, True, sin))
write("fuzz_endpoint", "endpoint-v6", sockaddr(1, 28, True, sin6))
write("fuzz_endpoint", "endpoint-unix", sockaddr(2, 2 + 14, True, sun))
write("fuzz_endpoint", "endpoint-unix-unnamed", sockaddr(2, 2, True, sun))
write("fuzz_endpoint", "endpoint-unix-full",
      sockaddr(2, 110, True, struct.pack("=H", AF_UNIX) + b"p" * 126))
write("fuzz_endpoint", "endpoint-unix-long-len",
      sockaddr(2, 4096, False, struct.pack("=H", AF_UNIX) + b"p" * 126))
write("fuzz_endpoint", "endpoint-other-family",
      sockaddr(3, 16, True, struct.pack("=H", 17) + bytes(14)))

# -- fuzz_http_head ---------------------------------------------------------
# First byte: how the stream is cut into reads (0: one read; b: reads of
# 1 to 2^(b % 15) bytes); the rest is the stream.

get11 = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
heads = {
    "get11": get11,
    "get10": "GET / HTTP/1.0\r\n\r\n",
    "get10-keep-alive": "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "close": "GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + get11,
    "pipelined": get11 * 3,
    "pipelined-then-partial": get11 * 2 + "GET / HT",
    "content-length-0": "POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n" + get11,
    "content-length-5": "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    "chunked": "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "upper-headers": "GET / HTTP/1.1\r\nCONNECTION: CLOSE\r\n\r\n",
    "http2": "GET / HTTP/2.0\r\n\r\n",
    "no-target": "GET HTTP/1.1\r\n\r\n",
    "empty-target": "GET  HTTP/1.1\r\n\r\n",
    "spaces-in-target": "GET /a b c HTTP/1.1\r\n\r\n",
    "leading-space": " GET / HTTP/1.1\r\n\r\n",
    "only-crlf": "\r\n\r\n",
    "lf-only": "GET / HTTP/1.1\n\n",
    "cr-split-terminator": "GET / HTTP/1.1\r\n\r\r\n\r\n",
    "nul-bytes": "GET /\0 HTTP/1.1\r\nX: \0\r\n\r\n",
    "no-terminator": "GET / HTTP/1.1\r\nHost: x\r\n",
    "garbage-8193": "x" * 8193,
    "head-8192": "GET /" + "a" * (8192 - len("GET / HTTP/1.1") - 1) + " HTTP/1.1\r\n\r\n",
    "head-9000": "GET /" + "a" * 9000 + " HTTP/1.1\r\n\r\n" + get11,
    "header-9000": "GET / HTTP/1.1\r\nX: " + "b" * 9000 + "\r\n\r\n",
}
for name, stream in heads.items():
    write("fuzz_http_head", name + "-1read", "\0" + stream)
for name in ["get11", "pipelined", "pipelined-then-partial", "close", "cr-split-terminator",
             "head-9000", "header-9000", "garbage-8193"]:
    write("fuzz_http_head", name + "-bytewise", "\x0f" + heads[name])  # reads of 1 byte
    write("fuzz_http_head", name + "-cut", "\x07" + heads[name])  # reads of 1..128 bytes
    write("fuzz_http_head", name + "-large-cut", "\x0d" + heads[name])  # 1..8192 bytes

# -- fuzz_starttls_lines ----------------------------------------------------
# First byte: how the stream is cut into reads (0: one read; b: reads of
# 1 to 2^(b % 15) bytes); the rest is the stream of one connection.

sessions = {
    "ehlo-starttls": "EHLO client.test\r\nSTARTTLS\r\n",
    "ehlo-starttls-echo": "EHLO c\r\nSTARTTLS\r\nhello over tls\r\nQUIT\r\n",
    "pipelined-after-starttls": "STARTTLS\r\nEHLO injected\r\n",
    "helo-quit": "HELO x\r\nQUIT\r\nafter quit\r\n",
    "lowercase": "ehlo a\nstarttls\n",
    "clear-data": "hello\r\nEHLO\r\nEHLO \r\n\r\n\n",
    "ehlo-control-bytes": "EHLO a\rb\r\nEHLO \x00\x7f\xff\r\n",
    "starttls-with-arg": "STARTTLS now\r\n",
    "line-8192": "x" * 8190 + "\r\n" + "QUIT\r\n",
    "line-8193": "x" * 8191 + "\r\n",
    "partial-8192": "y" * 8192,
    "burst-200": "EHLO b\r\n" * 200,
}
for name, stream in sessions.items():
    write("fuzz_starttls_lines", name + "-1read", "\0" + stream)
for name in ["ehlo-starttls", "ehlo-starttls-echo", "pipelined-after-starttls", "line-8192",
             "burst-200"]:
    write("fuzz_starttls_lines", name + "-bytewise", "\x0f" + sessions[name])
    write("fuzz_starttls_lines", name + "-cut", "\x07" + sessions[name])

# -- fuzz_rate_limiter -------------------------------------------------------
# A program; see fuzz_rate_limiter.cpp. Limit: mode byte (0: max_packets =
# next byte % 8, 1: 2 bytes, 2: 1000, 3: 4 bytes), window mode byte (0: next
# byte % 4 - 1 ms, 1: 2 bytes, 2: 1000 ms, 3: 8 bytes shifted right by the
# next byte % 64); the tiny table's size (1 + byte % 8); the start time (8
# bytes); then steps: 0-3 a datagram (source byte: % 8 the source, / 8 % 3
# its form), 4-5 a clock step (kind byte % 6 and its operand), 6 a new limit,
# 7 expire.


def limit(packets, window):
    return bytes([0, packets, 2]) if window == 1000 else bytes([0, packets, 1]) + struct.pack(
        ">H", window)


def datagram(source, form=0):
    return bytes([0, source + 8 * form])


def window_steps(n):  # the clock moves n windows
    return bytes([4, 2, n])


EXPIRE = bytes([7])
start = struct.pack(">q", 1_000_000_000)
programs = {
    # 3 per second: 3 pass, the 4th drops, a window later 3 again.
    "three-per-window": limit(3, 1000) + bytes([0]) + start + datagram(0) * 4
    + window_steps(1) + datagram(0) * 4 + EXPIRE + window_steps(1) + EXPIRE,
    # The same IPv4 source by value, as mapped IPv6 and as a socket address.
    "one-source-three-forms": limit(2, 1000) + bytes([0]) + start + datagram(1, 0)
    + datagram(1, 1) + datagram(1, 2),
    # Refill by fractions: a third of a window gives one of 3 tokens back.
    "fractions": limit(3, 1000) + bytes([3]) + start + datagram(2) * 3
    + bytes([4, 1, 2]) + datagram(2) * 2,
    # A new limit keeps the fill fraction; zero drops everything.
    "set-config": limit(4, 1000) + bytes([7]) + start + datagram(4) * 2
    + bytes([6]) + limit(8, 500) + datagram(4) * 7 + bytes([6]) + limit(0, 1000)
    + datagram(5) + EXPIRE,
    # The clock goes back: no tokens from it.
    "clock-back": limit(1, 1000) + bytes([0]) + start + datagram(3) + bytes([4, 3, 0xff, 0xff])
    + datagram(3) + window_steps(1) + datagram(3),
    # Every source, a tiny table of 1, expiry in between.
    "tiny-table": limit(1, 1) + bytes([0]) + start
    + b"".join(datagram(i) for i in range(8)) + window_steps(2) + EXPIRE
    + b"".join(datagram(i) for i in range(8)),
    # Extreme limits: 2^32-1 packets, the largest window, huge clock jumps.
    "extremes": bytes([3, 0xff, 0xff, 0xff, 0xff, 3]) + b"\x7f" + b"\xff" * 7 + bytes([0, 1])
    + struct.pack(">q", -(2**63)) + datagram(0) * 3 + bytes([4, 5]) + b"\x7f" + b"\xff" * 7
    + datagram(0) + bytes([6, 0, 1, 2]) + datagram(0) + EXPIRE,
}
for name, data in programs.items():
    write("fuzz_rate_limiter", name, data)

# -- fuzz_dhcp_message -------------------------------------------------------
# One datagram, as dhcp_dump receives it.


def dhcp(op=1, hlen=6, options=b"", cookie=b"\x63\x82\x53\x63", xid=0x3903F326):
    fixed = bytearray(236)
    fixed[0] = op
    fixed[1] = 1  # htype Ethernet
    fixed[2] = hlen
    fixed[4:8] = struct.pack(">I", xid)
    fixed[12:16] = bytes([192, 0, 2, 10])  # ciaddr
    fixed[16:20] = bytes([192, 0, 2, 20])  # yiaddr
    fixed[28:34] = bytes([0x00, 0x16, 0x3E, 0x12, 0x34, 0x56])
    return bytes(fixed) + cookie + options


dhcp_seeds = {
    "discover": dhcp(options=b"\x35\x01\x01\x0c\x04host\xff"),
    "request": dhcp(options=b"\x35\x01\x03\x32\x04\xc0\x00\x02\x14"
                    b"\x36\x04\xc0\x00\x02\x01\xff"),
    "ack-reply": dhcp(op=2, options=b"\x35\x01\x05\x00\x00\xff" + b"\x00" * 20),
    "no-end-option": dhcp(options=b"\x35\x01\x08"),
    "past-the-end": dhcp(options=b"\x35\x01\x01\x0c\x10abc"),
    "code-at-the-end": dhcp(options=b"\x35"),
    "short": dhcp()[:239],
    "bad-op": dhcp(op=3),
    "no-cookie": dhcp(cookie=b"\x00\x00\x00\x00"),
    "hostname-control-bytes": dhcp(options=b"\x0c\x06a\r\nb\x00\xff\xff"),
    "hlen-255": dhcp(hlen=255, options=b"\xff"),
    "unknown-type": dhcp(options=b"\x35\x01\x09\x35\x02\x01\x01\xff"),
    "empty": b"",
}
for name, data in dhcp_seeds.items():
    write("fuzz_dhcp_message", name, data)

# -- fuzz_example_options ----------------------------------------------------
# First byte: the integer type (% 8: int8, uint8, int16, uint16, int32,
# uint32, int64, uint64) the rest is checked as; the rest, split at NUL
# bytes, is also an argument vector.

option_seeds = {
    "long-forms": [3, "--port=8080", "--num-acceptors", "100", "--read-timeout=-1"],
    "short-forms": [3, "-p", "0", "-a10", "-H", "localhost", "-v"],
    "hex-and-octal": [4, "--port=0x10", "-a", "010"],
    "limits": [7, "--max-bytes=18446744073709551615", "--level=-128", "--level=127"],
    "over-limits": [0, "--max-bytes=18446744073709551616", "--level=128", "-p65536"],
    "signs-and-blanks": [4, "--port=+1", "--num-acceptors= 5", "-a-0", "--level=-0"],
    "leading-zeros": [6, "--read-timeout=-000123", "--port=00000"],
    "missing-values": [3, "--port", "--verbose", "-p"],
    "after-double-dash": [3, "--", "--port=0x10", "-p", "junk"],
    "category": [3, "--global.port=80", "--global.level", "7"],
    "string-values": [2, "--host=--port=1", "-H", "-p5", "--host", "0x10"],
    "unknown": [1, "--nope=0x10", "-z", "1", "positional"],
}
for name, (type_byte, *args) in option_seeds.items():
    write("fuzz_example_options", name, bytes([type_byte]) + "\0".join(args).encode())

# -- fuzz_output_queue ------------------------------------------------------
# A program of operations; see fuzz_output_queue.cpp. Write plans: 0
# want_write, 1 want_read, 2 closed, 3 failed, 4 partial + want_write,
# 5 all, 6 nothing but done, 7-9 partial.


def program(ops):
    p = Provider()
    for op in ops:
        kind = op[0]
        if kind == "small":
            p.in_range(0, 9, 0)
            p.in_range(0, 300, op[1])
        elif kind == "near16k":
            p.in_range(0, 9, 2)
            p.in_range(16000, 17000, op[1])
        elif kind == "large":
            p.in_range(0, 9, 3)
            p.in_range(0, 70000, op[1])
        elif kind == "many16k":
            p.in_range(0, 9, 4)
            p.in_range(1, 80, op[1])
        elif kind == "flush":
            p.in_range(0, 9, 5)
            for plan in op[1]:
                p.in_range(0, 9, plan[0])
                if plan[0] in (4, 7, 8, 9):
                    p.in_range(0, plan[2], plan[1])  # take plan[1] of plan[2] offered
        elif kind == "clear":
            p.in_range(0, 9, 8)
        elif kind == "move":
            p.in_range(0, 9, 9)
            p.boolean(op[1])
    return p.data()


queue_programs = {
    "append-flush-all": [("small", 100), ("flush", [(5,)])],
    "append-want-write": [("small", 100), ("flush", [(0,)]), ("flush", [(5,)])],
    "append-want-read": [("small", 10), ("flush", [(1,)])],
    "append-closed": [("small", 10), ("flush", [(2,)]), ("small", 5)],
    "append-failed": [("small", 10), ("flush", [(3,)]), ("clear",)],
    "partial-then-block": [("small", 200), ("flush", [(4, 50, 200)]), ("small", 7),
                           ("flush", [(5,)])],
    "partial-then-append": [("small", 200), ("flush", [(7, 150, 200), (0,)]),
                            ("small", 300), ("flush", [(5,)])],
    "nothing-done": [("small", 20), ("flush", [(6,)])],
    "near-16k": [("near16k", 16383), ("small", 1), ("small", 1), ("flush", [(5,)])],
    "16k-boundary": [("near16k", 16384), ("small", 10), ("flush", [(7, 16380, 16394), (0,)])],
    "large": [("large", 70000), ("flush", [(7, 1, 70000), (0,)]), ("flush", [(5,)])],
    "many-16k": [("many16k", 70), ("flush", [(5,), (5,)])],
    "many-16k-partial": [("many16k", 80), ("flush", [(7, 500000, 1048576), (0,)]),
                         ("flush", [(5,), (5,)])],
    "compaction": [("many16k", 80), ("flush", [(7, 1048575, 1048576), (0,)]),
                   ("small", 3), ("flush", [(5,), (5,)])],
    "clear-then-append": [("small", 100), ("flush", [(7, 10, 100), (0,)]), ("clear",),
                          ("small", 20), ("flush", [(5,)])],
    "move-construct": [("small", 100), ("move", True), ("flush", [(5,)])],
    "move-assign": [("small", 100), ("move", False), ("flush", [(5,)])],
    "move-after-partial": [("near16k", 16384), ("small", 100),
                           ("flush", [(7, 16384, 16484), (0,)]), ("move", True),
                           ("small", 1), ("flush", [(5,)])],
    "empty-flush": [("flush", [])],
    "zero-append": [("small", 0), ("flush", [])],
}
for name, ops in queue_programs.items():
    write("fuzz_output_queue", name, program(ops))

# -- fuzz_dns_answer --------------------------------------------------------
# The whole input is one query datagram, answered from test/fuzz/dns_answer.zone:
# the sample zone examples/zones/example.test.zone and, under the same origin,
# records that reach the responder's other paths (written here).


def write_fuzz_zone():
    with open(os.path.join(HERE, "..", "..", "examples", "zones", "example.test.zone")) as f:
        z = ("; The zone fuzz_dns_answer answers from (written by test/fuzz/make_seeds.py):\n"
             "; the dns_server example's sample zone, then records that reach the\n"
             "; responder's other paths: replies over 512, 1232 and 4096 bytes\n"
             "; (truncation), additional-section glue, CNAME chains and loops, a\n"
             "; delegation (a referral with glue) and a CNAME into it.\n") + f.read()
    z += "\n; -- for the fuzzer --\n"
    for i in range(8):  # about 900 bytes: over 512, under 1232
        z += 'medium  IN  TXT   "%d%s"\n' % (i, "m" * 99)
    for i in range(40):  # about 8500 bytes: over 4096
        z += 'big     IN  TXT   "%d%s"\n' % (i, "b" * 190)
    for i in range(20):  # the answer about 400 bytes, with the glue about 800
        z += "mx      IN  MX    10 m%d\n" % i
        z += "m%d      IN  A     192.0.2.%d\n" % (i, 100 + i)
    for i in range(12):  # c0 -> c1 -> ... -> c11 -> www
        z += "c%d      IN  CNAME %s\n" % (i, "www" if i == 11 else "c%d" % (i + 1))
    z += ("loop1   IN  CNAME loop2\nloop2   IN  CNAME loop1\nself    IN  CNAME self\n"
          "dangling IN CNAME missing\noutside IN  CNAME www.example.org.\n"
          "sub     IN  NS    ns.sub\nns.sub  IN  A     192.0.2.7\n"
          "deep.sub IN A     192.0.2.8\ntocut   IN  CNAME x.sub\n")
    with open(os.path.join(HERE, "dns_answer.zone"), "w") as f:
        f.write(z)


write_fuzz_zone()

TYPE = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28,
        "OPT": 41, "IXFR": 251, "AXFR": 252, "ANY": 255}
CLASS_IN, CLASS_CH = 1, 3
FLAG_RD = 0x0100


def dns_name(dotted):
    out = b""
    for label in dotted.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def dns_header(ident, flags, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">HHHHHH", ident, flags, qd, an, ns, ar)


def opt_rr(udp_size, version=0, options=b""):
    # Owner: the root; class: the UDP size; TTL: extended rcode, version, flags.
    return b"\0" + struct.pack(">HHBBHH", TYPE["OPT"], udp_size, 0, version, 0,
                               len(options)) + options


def dns_query(name, qtype, ident=0x1234, flags=FLAG_RD, qclass=CLASS_IN, edns=None,
              version=0, options=b""):
    ar = 0 if edns is None else 1
    q = dns_header(ident, flags, 1, 0, 0, ar) + dns_name(name)
    q += struct.pack(">HH", TYPE[qtype], qclass)
    if edns is not None:
        q += opt_rr(edns, version, options)
    return q


WWW = "www.example.test."
APEX = "example.test."
# 255 bytes in wire form: 3 labels of 63, one of 48, then example.test.
LONG_NAME = ".".join(["x" * 63] * 3 + ["y" * 48]) + "." + APEX
cookie = struct.pack(">HH", 10, 8) + bytes(range(1, 9))  # EDNS COOKIE option
a_in = struct.pack(">HH", TYPE["A"], CLASS_IN)
dns_seeds = {
    "a": dns_query(WWW, "A"),
    "aaaa": dns_query(WWW, "AAAA", ident=0x0001),
    "txt": dns_query(WWW, "TXT", ident=0x0002),
    "mx-glue": dns_query(APEX, "MX", ident=0x0003),
    "ns-glue": dns_query(APEX, "NS", ident=0x0004),
    "soa": dns_query(APEX, "SOA", ident=0x0005),
    "any-apex": dns_query(APEX, "ANY", ident=0x0006),
    "cname": dns_query("web.example.test.", "A", ident=0x0007),
    "empty-non-terminal": dns_query("b.example.test.", "A", ident=0x0008),
    "below-empty-non-terminal": dns_query("a.b.example.test.", "A", ident=0x0009),
    "nxdomain": dns_query("nothere.example.test.", "A", ident=0x000A),
    "nxdomain-255-byte-name": dns_query(LONG_NAME, "A", ident=0x000B),
    "outside-zone": dns_query("www.example.org.", "A", ident=0x000C),
    "mixed-case-no-rd": dns_query("WwW.ExAmPlE.TeSt.", "A", ident=0x000D, flags=0),
    "class-ch": dns_query(WWW, "A", ident=0x000E, qclass=CLASS_CH),
    "axfr": dns_query(APEX, "AXFR", ident=0x000F),
    "edns-4096": dns_query(WWW, "A", ident=0x0010, edns=4096),
    "edns-700-any": dns_query(APEX, "ANY", ident=0x0011, edns=700),
    "edns-100": dns_query(WWW, "AAAA", ident=0x0012, edns=100),
    "edns-cookie": dns_query(WWW, "A", ident=0x0013, edns=1232, options=cookie),
    "edns-version-1": dns_query(WWW, "A", ident=0x0014, edns=1232, version=1),
    "opcode-notify": dns_query(APEX, "SOA", ident=0x0015, flags=4 << 11),
    "opcode-15": dns_query(WWW, "A", ident=0x0016, flags=15 << 11 | FLAG_RD),
    "qr-set": dns_query(WWW, "A", ident=0x0017, flags=0x8000 | FLAG_RD),
    "runt": dns_query(WWW, "A", ident=0x0018)[:11],
    "qtype-opt": dns_query(WWW, "OPT", ident=0x0019),
    "trailing-bytes": dns_query(WWW, "A", ident=0x001A) + b"junk",
    "two-questions": dns_header(0x001B, FLAG_RD, qd=2) + dns_name(WWW) + a_in
    + b"\xc0\x0c" + a_in,
    # An answer-section record whose owner points at the question's name.
    "compressed-record": dns_header(0x001C, 0, qd=1, an=1) + dns_name(WWW) + a_in
    + b"\xc0\x0c" + a_in + struct.pack(">IH", 0, 4) + bytes([192, 0, 2, 80]),
    "opt-in-answer-section": dns_header(0x001D, FLAG_RD, qd=1, an=1) + dns_name(WWW) + a_in
    + opt_rr(1232),
    "pointer-loop": dns_header(0x001E, FLAG_RD) + b"\x01a\xc0\x0c" + a_in,
    # The records of the fuzz zone's second part.
    "medium-truncated": dns_query("medium.example.test.", "TXT", ident=0x0020),
    "medium-edns-1232": dns_query("medium.example.test.", "TXT", ident=0x0021, edns=1232),
    "big-edns-4096": dns_query("big.example.test.", "TXT", ident=0x0022, edns=4096),
    "mx-20-glue": dns_query("mx.example.test.", "MX", ident=0x0023),
    "cname-chain": dns_query("c0.example.test.", "A", ident=0x0024),
    "cname-loop": dns_query("loop1.example.test.", "A", ident=0x0025),
    "cname-self": dns_query("self.example.test.", "AAAA", ident=0x0026),
    "cname-dangling": dns_query("dangling.example.test.", "A", ident=0x0027),
    "cname-outside": dns_query("outside.example.test.", "A", ident=0x0028),
    "referral": dns_query("deep.sub.example.test.", "A", ident=0x0029),
    "referral-at-cut": dns_query("sub.example.test.", "NS", ident=0x002A),
    "cname-into-cut": dns_query("tocut.example.test.", "A", ident=0x002B),
}
for name, data in dns_seeds.items():
    write("fuzz_dns_answer", name, data)
