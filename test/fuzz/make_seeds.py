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
