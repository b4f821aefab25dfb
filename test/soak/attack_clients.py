#!/usr/bin/env python3
"""attack_clients.py: the hostile clients of test/soak/attacks.sh (and its
summary table). Python standard library only.

Every attack subcommand runs against one running example server, keeps a
well-behaved client going next to it (the "good" client: ping-pong with
every answer checked, in its own process so that the attackers' CPU use does
not delay it), and once done waits (bounded) until the server has closed the
attack's connections, then prints one JSON object on stdout: what the
clients saw, the good client's counts, the server's Prometheus counters
(--metrics URL) and the reasons the attack counts as failed, if any.

  attack_clients.py never-read   --port P ...  # messenger: silent readers
  attack_clients.py slowloris    --port P ...  # echo: a byte every few seconds
  attack_clients.py tls-garbage  --port P ...  # tls_echo: garbage, cut hellos
  attack_clients.py churn        --port P ...  # echo: short connections, RSTs
  attack_clients.py udp-flood    --port P ...  # udp_echo: one source, too fast
  attack_clients.py udp-spoof    --port P ...  # udp_echo: many sources
  attack_clients.py udp-oversize --port P ...  # udp_echo: too large datagrams
  attack_clients.py drain        --port P --pid PID ...  # echo: SIGTERM under load
  attack_clients.py record ...   # adds the server's side to an attack's JSON
  attack_clients.py table FILE   # prints the summary table of a results file
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import random
import re
import select
import signal
import socket
import ssl
import struct
import sys
import time
import urllib.request

HOST = "127.0.0.1"
# The good UDP client's source address: outside the spoofed range.
GOOD_UDP_SOURCE = "127.0.0.254"
FORK = multiprocessing.get_context("fork")


def now():
    return time.monotonic()


def bump(counts, key, n=1):
    counts[key] = counts.get(key, 0) + n


def error_name(exc):
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timeout"
    return type(exc).__name__


# -- the server's metrics endpoint ---------------------------------------------


def scrape(url):
    """The samples of a Prometheus text page, name{labels} -> value."""
    if not url:
        return {}
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except (OSError, ValueError):
        return {}
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            samples[name] = float(value)
        except ValueError:
            pass
    return samples


def settle_to(url, gauge, target, timeout):
    """Waits until the server's `gauge` (connections or UDP handlers open
    now) is at most `target`, at most `timeout` seconds; returns the last
    value."""
    deadline = now() + timeout
    while True:
        value = scrape(url).get(gauge)
        if value is None or value <= target or now() >= deadline:
            return value
        time.sleep(0.1)


def settle(url, gauge, timeout):
    return settle_to(url, gauge, 0, timeout)


def counters(samples):
    """The interesting non-zero counters, short names."""
    out = {}
    for name, value in sorted(samples.items()):
        if value == 0 or "_bucket" in name or name.endswith(("_sum", "_count")):
            continue
        short = name.replace("atoll_", "").replace("_total", "")
        short = re.sub(r'\{\w+="([^"]*)"\}', r"[\1]", short)
        if short.startswith(("connections", "handshake", "spawn", "accept", "datagrams",
                             "udp_handlers")):
            out[short] = int(value)
    return out


def settle_and_scrape(args, gauge="atoll_connections_active", timeout=15):
    left = settle(args.metrics, gauge, timeout)
    return {"server_counters": counters(scrape(args.metrics)),
            "open_at_end": None if left is None else int(left)}


# -- the good clients (each in its own process) --------------------------------


class Good:
    """Runs `target(*args, stop, ready, results)` in a child process."""

    def __init__(self, target, *args):
        self.stop = FORK.Event()
        self.ready = FORK.Event()
        self.results = FORK.Queue()
        self.proc = FORK.Process(target=target, args=(*args, self.stop, self.ready, self.results),
                                 daemon=True)
        self.proc.start()

    def wait_ready(self, timeout=10):
        return self.ready.wait(timeout)

    def finish(self, timeout=20):
        self.stop.set()
        try:
            res = self.results.get(timeout=timeout)
        except queue.Empty:
            res = {"checked": 0, "lost": 0, "errors": {"no report": 1}}
        self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
        return res


def good_tcp(port, use_tls, interval, timeout, stop, ready, results):
    """Ping-pong: a unique line, its echo checked byte for byte within
    `timeout`. A ping without its echo (error, timeout, mismatch, or no
    connection to send it on) is lost; the client then reconnects."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctx = None
    if use_tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    st = {"checked": 0, "lost": 0, "connects": 0, "errors": {}, "max_rtt_ms": 0.0}
    sock = None
    seq = 0
    while not stop.is_set():
        seq += 1
        msg = b"good %d %s\n" % (seq, os.urandom(6).hex().encode())
        try:
            if sock is None:
                raw = socket.create_connection((HOST, port), timeout=timeout)
                sock = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
                st["connects"] += 1
            t0 = now()
            sock.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = sock.recv(len(msg) - len(got))
                if not chunk:
                    raise ConnectionError("closed by the server")
                got += chunk
            if got != msg:
                raise ValueError("mismatch")
            st["checked"] += 1
            st["max_rtt_ms"] = max(st["max_rtt_ms"], (now() - t0) * 1000)
            ready.set()
        except (OSError, ValueError) as exc:
            st["lost"] += 1
            bump(st["errors"], error_name(exc))
            if sock is not None:
                sock.close()
            sock = None
        stop.wait(interval)
    if sock is not None:
        sock.close()
    st["max_rtt_ms"] = round(st["max_rtt_ms"], 1)
    results.put(st)


def good_udp(port, interval, timeout, stop, ready, results):
    """Sends a unique datagram from GOOD_UDP_SOURCE and waits `timeout` for
    its echo; without it the datagram is lost."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    st = {"checked": 0, "lost": 0, "errors": {}, "max_rtt_ms": 0.0}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((GOOD_UDP_SOURCE, 0))
    seq = 0
    while not stop.is_set():
        seq += 1
        msg = b"good %d %s" % (seq, os.urandom(6).hex().encode())
        t0 = now()
        try:
            sock.sendto(msg, (HOST, port))
            deadline = t0 + timeout
            while True:
                left = deadline - now()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                data = sock.recv(65536)
                if data == msg:
                    break  # (a late echo of an earlier one is skipped)
            st["checked"] += 1
            st["max_rtt_ms"] = max(st["max_rtt_ms"], (now() - t0) * 1000)
            ready.set()
        except OSError as exc:
            st["lost"] += 1
            bump(st["errors"], error_name(exc))
        stop.wait(interval)
    st["max_rtt_ms"] = round(st["max_rtt_ms"], 1)
    results.put(st)


def start_good_tcp(args, use_tls=False):
    good = Good(good_tcp, args.port, use_tls, args.good_interval, args.good_timeout)
    if not good.wait_ready():
        print("attack_clients: the good client got no first echo within 10 s", file=sys.stderr)
    return good


async def run_for(duration, stop, coros):
    """Runs `coros` as tasks for `duration` seconds, then sets `stop` and
    waits for them to end."""
    tasks = [asyncio.create_task(c) for c in coros]
    await asyncio.sleep(duration)
    stop.set()
    await asyncio.gather(*tasks)


def beside_good_client(args, attack, use_tls=False):
    """Runs the coroutine `attack(args)` while a good client pings; returns
    the good client's result, the attack's result and the server's state
    after it settled."""
    good = start_good_tcp(args, use_tls)
    out = asyncio.run(attack(args))
    good_res = good.finish()
    return good_res, out, settle_and_scrape(args)


async def stop_after(event, seconds):
    """Waits `seconds` or until `event` is set; True if it was set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return False


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def reset_on_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# -- 1. never-reading clients on messenger --------------------------------------


def messenger_join(port, rcvbuf=None):
    """Connects to the messenger and reads its welcome line; returns the
    socket and the name the room gives this client."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect((HOST, port))
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed before the welcome line")
        line += chunk
    if not line.startswith(b"welcome, "):
        raise ValueError(f"unexpected first line {line!r}")
    return sock, line[len(b"welcome, "):-1]


SENT_LINE = 100  # bytes of every line the talker sends, its newline included


def talker(sock, stop, results):
    """Sends numbered lines of SENT_LINE bytes as fast as the socket takes
    them until `stop`; reports the bytes sent (only complete lines count:
    the last block is finished, within 10 s)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pad = b"x" * (SENT_LINE - len(b"seq 0000000000 \n"))
    sock.settimeout(0.5)
    seq = 0
    sent = 0
    cut = None
    while not stop.is_set() and cut is None:
        block = b"".join(b"seq %010d %s\n" % (seq + i, pad) for i in range(512))
        seq += 512
        view = memoryview(block)
        hard_deadline = None
        while view:
            try:
                n = sock.send(view)
                view = view[n:]
                sent += n
            except socket.timeout:
                if stop.is_set():
                    hard_deadline = hard_deadline or now() + 10
                    if now() > hard_deadline:
                        break
            except OSError as exc:
                cut = error_name(exc)
                break
    results.put({"bytes": sent, "lines": sent // SENT_LINE, "cut": cut})


def listener(sock, name, expected, results):
    """The reading client: counts the talker's lines in order. `expected`
    becomes the number sent once the talker stopped; then this reads until
    it has them all, or 15 s without data."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prefix = name + b": seq "
    sock.settimeout(0.5)
    st = {"received": 0, "gaps": 0, "missing": 0, "other_lines": 0, "closed": None}
    rest = b""
    last_data = now()
    nxt = 0

    def line_seq(line):
        if not line.startswith(prefix):
            return None
        try:
            return int(line[len(prefix):len(prefix) + 10])
        except ValueError:
            return None

    while True:
        total = expected.value
        if total >= 0 and (nxt >= total or now() - last_data > 15):
            break
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError as exc:
            st["closed"] = error_name(exc)
            break
        if not chunk:
            st["closed"] = "closed by the server"
            break
        last_data = now()
        st["last_line_at"] = last_data
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        if not parts:
            continue
        first, last = line_seq(parts[0]), line_seq(parts[-1])
        if first == nxt and last == nxt + len(parts) - 1:  # the fast path
            nxt += len(parts)
            st["received"] += len(parts)
            continue
        for line in parts:  # something is off: line by line
            seq = line_seq(line)
            if seq is None:
                st["other_lines"] += 1
                continue
            if seq != nxt:
                st["gaps"] += 1
                st["missing"] += max(seq - nxt, 0)
            nxt = seq + 1
            st["received"] += 1
    st["next"] = nxt
    results.put(st)


def attack_never_read(args):
    port = args.port
    listen_sock, _ = messenger_join(port)
    silent = []
    for _ in range(args.clients):
        sock, _ = messenger_join(port, rcvbuf=4096)  # then never read again
        silent.append(sock)
    talk_sock, talk_name = messenger_join(port)
    expected = FORK.Value("q", -1)
    listen_results = FORK.Queue()
    talk_results = FORK.Queue()
    talk_stop = FORK.Event()
    lproc = FORK.Process(target=listener, args=(listen_sock, talk_name, expected, listen_results),
                         daemon=True)
    tproc = FORK.Process(target=talker, args=(talk_sock, talk_stop, talk_results), daemon=True)
    lproc.start()
    tproc.start()
    listen_sock.close()
    talk_sock.close()
    t0 = now()
    end = t0 + args.duration
    # The server's open connections over the attack: the never-readers it
    # disconnected. (Their clients cannot see it: the server's FIN waits
    # behind the data they do not read.)
    active = []
    while now() < end:
        value = scrape(args.metrics).get("atoll_connections_active")
        if value is not None:
            active.append((now() - t0, int(value)))
        time.sleep(0.5)
    talk_stop.set()
    t_stop = now()
    try:
        talk = talk_results.get(timeout=30)
    except queue.Empty:
        talk = {"bytes": 0, "lines": 0, "cut": "no report from the talker"}
    expected.value = talk["lines"]
    try:
        heard = listen_results.get(timeout=60)
    except queue.Empty:
        heard = {"received": 0, "closed": "no report", "next": 0, "gaps": 0, "missing": 0}
    tproc.join(2)
    lproc.join(2)
    # The talker and the reader are gone: what the server still holds are
    # never-readers it has not disconnected.
    silent_open = settle_to(args.metrics, "atoll_connections_active", args.clients, 3)
    silent_open = args.clients if silent_open is None else min(int(silent_open), args.clients)
    for sock in silent:
        sock.close()
    res = settle_and_scrape(args)
    lost = talk["lines"] - heard["received"]
    total = args.clients + 2
    cut = [t for t, n in active if n < total]
    step = max(len(active) // 8, 1)
    res.update({
        "clients": f"{args.clients} never read, 1 talker, 1 reader",
        "good": {"checked": heard["received"], "lost": lost},
        "details": [
            f"talker sent {talk['lines']:,} lines ({talk['bytes'] / 1e6:.1f} MB, "
            f"{talk['lines'] / args.duration:,.0f}/s) from {talk_name.decode()}"
            + (f"; talker cut: {talk['cut']}" if talk["cut"] else ""),
            f"reader got {heard['received']:,} in order, gaps {heard['gaps']}, "
            f"closed: {heard['closed'] or 'no'}; its last line came "
            f"{heard.get('last_line_at', t_stop) - t_stop:.1f} s after the talker stopped",
            "server's open connections (s: n): "
            + ", ".join(f"{t:.1f}: {n}" for t, n in active[::step])
            + f"; first below {total}: "
            + (f"at {cut[0]:.1f} s" if cut else "never during the attack")
            + f"; never-readers disconnected by the server by the end: "
            f"{args.clients - silent_open}/{args.clients}",
        ],
        "fail": [],
    })
    # The messenger's policy (IRC's "SendQ exceeded"): a client whose queued
    # output reaches the 4 MiB limit is disconnected, also a reading one that
    # cannot keep up with a talker at full speed. What the reader got must
    # still be the talker's lines in order, without a gap; if the server did
    # not cut it, every line.
    cut_by_server = heard["closed"] == "closed by the server"
    if heard["gaps"] or heard["missing"]:
        res["fail"].append("the reading client saw lines out of order or missing")
    elif heard["closed"] and not cut_by_server:
        res["fail"].append(f"the reading client failed: {heard['closed']}")
    elif lost and not cut_by_server:
        res["fail"].append("the reading client missed lines")
    if cut_by_server:
        res["details"].append(
            f"the reader was disconnected by the server after {heard['received']:,} lines "
            "(too slow for the room: its queued output reached the output limit)")
        res["good"]["lost"] = 0  # cut by policy; what it got was complete
    return res


# -- 2. slowloris on echo ---------------------------------------------------------


async def slowloris(args):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    st = {"opened": 0, "connect_failed": 0, "closed_by_server": 0, "reset": 0, "bytes": 0,
          "no_echo": 0, "open": 0, "max_open": 0, "lifetimes": []}

    async def slot():
        await asyncio.sleep(random.uniform(0, 1))  # connects spread over 1 s
        while not stop.is_set():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (HOST, args.port)), 5)
            except (asyncio.TimeoutError, OSError):
                st["connect_failed"] += 1
                sock.close()
                await stop_after(stop, 1)
                continue
            st["opened"] += 1
            st["open"] += 1
            st["max_open"] = max(st["max_open"], st["open"])
            born = now()
            first = True
            try:
                while True:
                    delay = (random.uniform(0, args.interval) if first
                             else args.interval * random.uniform(0.9, 1.1))
                    first = False
                    if await stop_after(stop, delay):
                        break
                    await loop.sock_sendall(sock, b"x")
                    st["bytes"] += 1
                    data = await asyncio.wait_for(loop.sock_recv(sock, 64), 5)
                    if not data:
                        st["closed_by_server"] += 1
                        st["lifetimes"].append(now() - born)
                        break
            except asyncio.TimeoutError:
                st["no_echo"] += 1
            except OSError:
                st["reset"] += 1
                st["lifetimes"].append(now() - born)
            finally:
                sock.close()
                st["open"] -= 1

    await run_for(args.duration, stop, (slot() for _ in range(args.connections)))
    return st


def attack_slowloris(args):
    good_res, st, res = beside_good_client(args, slowloris)
    life = sorted(st.pop("lifetimes"))
    res.update({
        "clients": f"{args.connections} slow conns (1 B/{args.interval:g} s)",
        "good": good_res,
        "details": [
            f"connections opened {st['opened']:,} (at most {st['max_open']} at once), "
            f"connect failures {st['connect_failed']}, bytes sent {st['bytes']:,}",
            f"closed by the server {st['closed_by_server']:,} + reset {st['reset']} "
            + (f"(median lifetime {life[len(life) // 2]:.1f} s)" if life else "")
            + f", echo missing {st['no_echo']}",
        ],
        "fail": [],
    })
    return res


# -- 3. TLS garbage on tls_echo -----------------------------------------------------


def client_hellos(count):
    """Real TLS ClientHello records (each with its own random and key share)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    out = []
    for _ in range(count):
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        conn = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
        try:
            conn.do_handshake()
        except ssl.SSLWantReadError:
            pass
        out.append(outgoing.read())
    return out


TLS_KINDS = ("random_bytes", "cut_hello", "big_record_header", "hello_then_garbage",
             "app_data_first")


async def tls_garbage(args):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    hellos = client_hellos(64)
    per = {k: {"sent": 0, "closed": 0, "open_at_end": 0, "max_s": 0.0} for k in TLS_KINDS}
    st = {"connect_failed": 0}
    # The connection rate of all slots together is capped: each connection
    # takes the next start time.
    t_start = now()
    started = [0]

    async def take_token():
        due = t_start + started[0] / args.rate
        started[0] += 1
        if due > now():
            await asyncio.sleep(due - now())

    def payload(kind):
        hello = random.choice(hellos)
        if kind == "random_bytes":
            return os.urandom(random.randint(1, 2048))
        if kind == "cut_hello":
            return hello[:random.randint(1, len(hello) - 1)]
        if kind == "big_record_header":  # claims 16 KiB, sends 100 bytes
            return b"\x16\x03\x01\x40\x00" + os.urandom(100)
        if kind == "hello_then_garbage":
            return hello + os.urandom(random.randint(16, 1024))
        body = os.urandom(random.randint(16, 512))  # application data, no handshake
        return b"\x17\x03\x03" + struct.pack("!H", len(body)) + body

    async def slot():
        await asyncio.sleep(random.uniform(0, 1))
        while not stop.is_set():
            await take_token()
            if stop.is_set():
                break
            kind = random.choice(TLS_KINDS)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (HOST, args.port)), 5)
                await loop.sock_sendall(sock, payload(kind))
            except (asyncio.TimeoutError, OSError):
                st["connect_failed"] += 1
                sock.close()
                continue
            per[kind]["sent"] += 1
            t0 = now()
            try:  # until the server closes it (whatever it answers)
                while not stop.is_set():
                    recv = asyncio.ensure_future(loop.sock_recv(sock, 4096))
                    waiter = asyncio.ensure_future(stop.wait())
                    done, _ = await asyncio.wait({recv, waiter}, timeout=30,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    if recv not in done:
                        recv.cancel()
                        break
                    if not recv.result():
                        raise ConnectionError
            except OSError:
                per[kind]["closed"] += 1
                per[kind]["max_s"] = max(per[kind]["max_s"], now() - t0)
            else:
                per[kind]["open_at_end"] += 1
            finally:
                sock.close()

    await run_for(args.duration, stop, (slot() for _ in range(args.connections)))
    return per, st


def attack_tls_garbage(args):
    good_res, (per, st), res = beside_good_client(args, tls_garbage, use_tls=True)
    total = sum(v["sent"] for v in per.values())
    res.update({
        "clients": f"{args.connections} garbage slots, {total:,} conns",
        "good": good_res,
        "details": ["per kind: sent/closed by the server/still open at the end/slowest close: "
                    + ", ".join(f"{k} {v['sent']}/{v['closed']}/{v['open_at_end']}/"
                                f"{v['max_s']:.1f}s" for k, v in per.items())
                    + f"; connect failures {st['connect_failed']}"],
        "fail": [],
    })
    slow = [k for k, v in per.items() if v["max_s"] > args.handshake_timeout + 3]
    if slow:
        res["fail"].append("garbage connections outlived the handshake timeout: " + ", ".join(slow))
    return res


# -- 4. connection churn on echo ------------------------------------------------------


CHURN_KINDS = ("echo_close", "send_rst", "connect_rst", "half_close", "big_send_rst")


async def churn(args):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    per = {k: {"done": 0, "anomalies": 0} for k in CHURN_KINDS}
    st = {"connect_failed": 0, "anomaly_kinds": {}, "half_close_no_fin": 0}
    big = os.urandom(256 * 1024)
    t_start = now()
    started = [0]

    async def expect_echo(sock, msg):
        """Reads until `msg` came back whole (5 s per read); raises if not."""
        got = b""
        while len(got) < len(msg):
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 64), 5)
            if not chunk:
                break
            got += chunk
        if got != msg:
            raise ValueError("echo mismatch")

    async def once(kind):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (HOST, args.port)), 5)
            except (asyncio.TimeoutError, OSError):
                st["connect_failed"] += 1
                return
            msg = os.urandom(32)
            if kind == "connect_rst":
                reset_on_close(sock)
            elif kind in ("send_rst", "big_send_rst"):
                await asyncio.wait_for(
                    loop.sock_sendall(sock, big if kind == "big_send_rst" else msg), 5)
                reset_on_close(sock)
            elif kind == "echo_close":
                await loop.sock_sendall(sock, msg)
                await expect_echo(sock, msg)
            else:  # half_close: the echo, then (noted, not required) the server's FIN
                await loop.sock_sendall(sock, msg)
                sock.shutdown(socket.SHUT_WR)
                await expect_echo(sock, msg)
                try:
                    if await asyncio.wait_for(loop.sock_recv(sock, 64), 5):
                        bump(st["anomaly_kinds"], "half_close:data after the echo")
                except asyncio.TimeoutError:
                    st["half_close_no_fin"] += 1
            per[kind]["done"] += 1
        except (OSError, ValueError) as exc:  # (asyncio.TimeoutError is an OSError)
            per[kind]["anomalies"] += 1
            bump(st["anomaly_kinds"], f"{kind}:{error_name(exc)}")
        finally:
            sock.close()

    async def worker():
        while not stop.is_set():
            # The connection rate of all workers together is capped.
            due = t_start + started[0] / args.rate
            if due > now():
                await asyncio.sleep(due - now())
            started[0] += 1
            await once(random.choice(CHURN_KINDS))

    await run_for(args.duration, stop, (worker() for _ in range(args.concurrency)))
    return per, st


def attack_churn(args):
    good_res, (per, st), res = beside_good_client(args, churn)
    total = sum(v["done"] + v["anomalies"] for v in per.values())
    res.update({
        "clients": f"{args.concurrency} churners, {total:,} conns",
        "good": good_res,
        "details": [
            f"{total / args.duration:,.0f} connections/s; done/anomalies per kind: "
            + ", ".join(f"{k} {v['done']}/{v['anomalies']}" for k, v in per.items())
            + f"; connect failures {st['connect_failed']}; half-closes without the server's "
            f"FIN within 5 s: {st['half_close_no_fin']}",
        ] + ([f"anomalies: {st['anomaly_kinds']}"] if st["anomaly_kinds"] else []),
        "fail": [],
    })
    if any(per[k]["anomalies"] for k in ("echo_close", "half_close")):
        res["fail"].append("a well-formed short connection got a wrong or no echo")
    return res


# -- 5. UDP floods ----------------------------------------------------------------------


def udp_socket_drops(port):
    """(rx queue bytes, drops) of the server's UDP socket on `port`, from
    /proc/net/udp, or None."""
    try:
        with open("/proc/net/udp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].split(":")[1], 16) == port:
                    return int(fields[4].split(":")[1], 16), int(fields[-1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def paced(rate, duration, between_batches):
    """Yields 0, 1, 2, ...: `rate` indexes a second for `duration` seconds,
    in batches (at most 5,000) with a call of `between_batches` after each."""
    t0 = now()
    end = t0 + duration
    i = 0
    while True:
        t = now()
        if t >= end:
            return
        due = min(int((t - t0) * rate) - i, 5000)
        for _ in range(due):
            yield i
            i += 1
        between_batches()


def send_counted(st, send):
    """Calls `send`, counting it in st["sent"] or st["send_failed"]."""
    try:
        send()
        st["sent"] += 1
    except OSError:
        st["send_failed"] += 1


def udp_flood(args, sources, ports_per_source, rate, sizes, boundary_every=0):
    """Sends `rate` datagrams/s round robin from `ports_per_source` sockets
    on each address of `sources`; sizes uniform in `sizes` (lo, hi), and every
    `boundary_every`-th one exactly --max-packet-size bytes. Counts the
    answers."""
    socks = []
    for src in sources:
        for _ in range(ports_per_source):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((src, 0))
            sock.setblocking(False)
            socks.append(sock)
    poller = select.epoll()
    by_fd = {}
    for sock in socks:
        poller.register(sock.fileno(), select.EPOLLIN)
        by_fd[sock.fileno()] = sock
    blob = os.urandom(65507)
    st = {"sent": 0, "send_failed": 0, "answered": 0, "boundary_sent": 0, "boundary_answered": 0,
          "sockets": len(socks)}
    dest = (HOST, args.port)

    def collect(timeout):
        for fd, _ in poller.poll(timeout):
            sock = by_fd[fd]
            while True:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    break
                except OSError:
                    break
                st["answered"] += 1
                if boundary_every and len(data) == args.max_packet_size:
                    st["boundary_answered"] += 1

    def between_batches():
        collect(0)
        time.sleep(0.005)

    for i in paced(rate, args.duration, between_batches):
        sock = socks[i % len(socks)]
        if boundary_every and (i + 1) % boundary_every == 0:
            size = args.max_packet_size
            st["boundary_sent"] += 1
        else:
            size = random.randint(*sizes)
        send_counted(st, lambda: sock.sendto(memoryview(blob)[:size], dest))
    drops = udp_socket_drops(args.port)
    settle_end = now() + 2  # late answers
    while now() < settle_end:
        collect(0.1)
    for sock in socks:
        sock.close()
    st["kernel_drops_at_server_socket"] = None if drops is None else drops[1]
    return st


def spoofed_source(i):
    """The i-th spoofed source address: 127.1.0.0 upwards (127.0.0.x, where
    the server and the good client are, is left alone)."""
    i %= 126 * 65536
    return socket.inet_aton(f"127.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}")


def udp_spoof_raw(args):
    """Sends `args.rate` datagrams/s of 64 bytes, each from the next of
    `args.sources` distinct source addresses (cycled), through a raw socket
    that writes its own IPv4 header (loopback only; answers go to the
    spoofed addresses, where nothing listens). None without CAP_NET_RAW."""
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    except PermissionError:
        return None
    payload = os.urandom(64)
    dst = socket.inet_aton(HOST)
    st = {"sent": 0, "send_failed": 0, "answered": 0, "sockets": 1,
          "spoofed": min(args.sources, 126 * 65536)}
    for i in paced(args.rate, args.duration, lambda: time.sleep(0.005)):
        src = spoofed_source(i % args.sources)
        sport = 1024 + (i * 7919) % 60000
        udp = struct.pack("!HHHH", sport, args.port, 8 + len(payload), 0) + payload
        # Linux fills in the total length, the id and the checksum.
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, socket.IPPROTO_UDP, 0, src, dst)
        send_counted(st, lambda: raw.sendto(ip + udp, (HOST, 0)))
    raw.close()
    st["spoofed"] = min(st["sent"], st["spoofed"])
    drops = udp_socket_drops(args.port)
    st["kernel_drops_at_server_socket"] = None if drops is None else drops[1]
    return st


def attack_udp(args, kind):
    good = Good(good_udp, args.port, args.good_interval, args.good_timeout)
    if not good.wait_ready():
        print("attack_clients: the good UDP client got no first echo within 10 s", file=sys.stderr)
    if kind == "udp-flood":
        st = udp_flood(args, [HOST], 1, args.rate, (64, 64))
        clients = f"1 source, {args.rate:,}/s x 64 B"
    elif kind == "udp-spoof":
        st = udp_spoof_raw(args)
        if st is not None:
            clients = (f"{args.sources:,} spoofed addrs (raw socket), {args.rate:,}/s, "
                       f"limiter table {args.table:,}")
        else:  # no CAP_NET_RAW: real sockets on at most 250 addresses
            n = min(args.sources, 250)
            sources = [f"127.0.0.{i}" for i in range(2, 2 + n)]
            st = udp_flood(args, sources, args.ports_per_source, args.rate, (64, 64))
            clients = (f"{n} addrs x {args.ports_per_source} ports (no raw socket), "
                       f"{args.rate:,}/s, limiter table {args.table:,}")
    else:
        sizes = (args.max_packet_size + 1, 65507)
        st = udp_flood(args, [HOST], 1, args.rate, sizes, boundary_every=50)
        clients = f"1 source, {args.rate:,}/s x {args.max_packet_size + 1}..65507 B"
    good_res = good.finish()
    res = settle_and_scrape(args, gauge="atoll_udp_handlers_active")
    dropped = st["sent"] - st["answered"]
    if st.get("spoofed"):
        line = (f"sent {st['sent']:,} from {st['spoofed']:,} distinct spoofed sources "
                f"127.1.0.0.. (send failures {st['send_failed']}; answers go to the spoofed "
                f"addresses); kernel drops at the server socket: "
                f"{st['kernel_drops_at_server_socket']}")
    else:
        line = (f"sent {st['sent']:,} from {st['sockets']} sockets (send failures "
                f"{st['send_failed']}), answered {st['answered']:,}, unanswered {dropped:,}; "
                f"kernel drops at the server socket: {st['kernel_drops_at_server_socket']}")
    details = [line]
    res.update({"clients": clients, "good": good_res, "details": details, "fail": [],
                "udp": st})
    if kind == "udp-spoof":
        res["limiter_table"] = args.table
    if kind == "udp-oversize":
        details.append(f"datagrams of exactly --max-packet-size ({args.max_packet_size} B): "
                       f"{st['boundary_sent']} sent, {st['boundary_answered']} answered")
        if st["answered"] - st["boundary_answered"] > 0:
            res["fail"].append("an oversized datagram was answered")
    return res


# -- 6. drain under load -------------------------------------------------------------------


def process_ended(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1] in ("Z", "X")
    except OSError:
        return True
    return False


async def drain(args):
    loop = asyncio.get_running_loop()
    state = {"t_sig": None}
    st = {"answered": 0, "answered_after_signal": 0, "lost_before_signal": 0,
          "unanswered_after_signal": 0, "mismatch": 0, "eof": 0, "reset": 0, "timeout": 0,
          "connect_failed": 0, "connected": 0}
    all_connected = asyncio.Event()

    async def client(i):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (HOST, args.port)), 10)
        except (asyncio.TimeoutError, OSError):
            st["connect_failed"] += 1
            sock.close()
            if st["connected"] + st["connect_failed"] == args.clients:
                all_connected.set()
            return
        st["connected"] += 1
        if st["connected"] + st["connect_failed"] == args.clients:
            all_connected.set()
        seq = 0
        try:
            while True:
                seq += 1
                msg = (b"%05d %09d " % (i, seq)).ljust(63, b".") + b"\n"
                try:
                    await loop.sock_sendall(sock, msg)
                except OSError:
                    break  # (closed before the request went out: nothing outstanding)
                t_send = now()
                before = state["t_sig"] is None
                got = b""
                try:
                    while len(got) < len(msg):
                        chunk = await asyncio.wait_for(loop.sock_recv(sock, len(msg) - len(got)),
                                                       10)
                        if not chunk:
                            raise EOFError
                        got += chunk
                except (EOFError, asyncio.TimeoutError, OSError) as exc:
                    key = ("eof" if isinstance(exc, EOFError) else
                           "timeout" if isinstance(exc, asyncio.TimeoutError) else "reset")
                    st[key] += 1
                    if before and (state["t_sig"] is None or t_send < state["t_sig"]):
                        st["lost_before_signal"] += 1
                    else:
                        st["unanswered_after_signal"] += 1
                    break
                if got != msg:
                    st["mismatch"] += 1
                st["answered"] += 1
                if not before:
                    st["answered_after_signal"] += 1
        finally:
            sock.close()

    tasks = [asyncio.create_task(client(i)) for i in range(args.clients)]
    try:
        await asyncio.wait_for(all_connected.wait(), 20)
    except asyncio.TimeoutError:
        pass
    await asyncio.sleep(args.duration)
    answered_at_signal = st["answered"]
    state["t_sig"] = now()
    os.kill(args.pid, signal.SIGTERM)
    refused = []
    for _ in range(5):  # a connect right after the signal must be refused
        await asyncio.sleep(0.02)
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(probe, (HOST, args.port)), 1)
            refused.append(False)
        except (asyncio.TimeoutError, OSError):
            refused.append(True)
        finally:
            probe.close()
    stop_ms = None
    limit = state["t_sig"] + args.shutdown_timeout / 1000 + 10
    while now() < limit:
        if stop_ms is None and process_ended(args.pid):
            stop_ms = (now() - state["t_sig"]) * 1000
        if stop_ms is not None and all(t.done() for t in tasks):
            break
        await asyncio.sleep(0.01)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    st["answered_before_signal"] = answered_at_signal
    st["refused_after_signal"] = f"{sum(refused)}/{len(refused)}"
    st["stop_ms"] = None if stop_ms is None else round(stop_ms)
    return st


def attack_drain(args):
    st = asyncio.run(drain(args))
    res = {
        "clients": f"{args.clients} ping-pong, SIGTERM after {args.duration:g} s",
        "good": {"checked": st["answered"], "lost": st["lost_before_signal"]},
        "details": [
            f"answered {st['answered']:,} ({st['answered_before_signal'] / args.duration:,.0f}/s "
            f"before the signal), {st['answered_after_signal']} after it; "
            f"sent before the signal and unanswered: {st['lost_before_signal']}; "
            f"sent after the signal and unanswered: {st['unanswered_after_signal']}",
            f"client ends: eof {st['eof']}, reset {st['reset']}, timeout {st['timeout']}, "
            f"mismatches {st['mismatch']}, connect failures {st['connect_failed']}; "
            f"server gone {st['stop_ms']} ms after SIGTERM (bound "
            f"{args.shutdown_timeout} ms); connects refused after it: "
            f"{st['refused_after_signal']}",
        ],
        "fail": [],
        "drain": st,
    }
    if st["lost_before_signal"]:
        res["fail"].append(f"{st['lost_before_signal']} requests sent before SIGTERM unanswered")
    if st["mismatch"] or st["reset"] or st["timeout"] or st["connect_failed"]:
        res["fail"].append("mismatch/reset/timeout/connect failure during the drain")
    if st["stop_ms"] is None or st["stop_ms"] > args.shutdown_timeout + 1000:
        res["fail"].append(f"stop took {st['stop_ms']} ms")
    if not st["refused_after_signal"].startswith("5/"):
        res["fail"].append(f"connects after SIGTERM not refused ({st['refused_after_signal']})")
    return res


# -- record and table ----------------------------------------------------------------------


def memory_timeline(path, t_start, t_end):
    """The server's VmRSS from the sampler's log "TIME VmHWM VmRSS" (KiB):
    about 8 points over the attack, then its highest value."""
    try:
        samples = [tuple(float(x) for x in line.split()) for line in open(path)
                   if len(line.split()) == 3]
    except (OSError, ValueError):
        return ""
    during = [s for s in samples if t_start <= s[0] <= t_end]
    if not during:
        return ""
    step = max((t_end - t_start) / 8, 0.5)
    points, next_t = [], t_start
    for t, _, rss in during:
        if t >= next_t:
            points.append(f"{t - t_start:.0f}s {rss / 1024:.0f}")
            next_t = t + step
    top = max(during, key=lambda s: s[2])
    return (f"server VmRSS MB over the attack: {', '.join(points)}; end {during[-1][2] / 1024:.0f}"
            f" (highest {top[2] / 1024:.0f} at {top[0] - t_start:.1f}s)")


def record(args):
    """Adds the server's side (memory, exit) to an attack's JSON and prints
    one results line."""
    try:
        with open(args.attack_json) as f:
            res = json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        res = {"clients": "?", "good": {"checked": 0, "lost": 0}, "details": [],
               "fail": ["the attack client failed (see its stderr)"]}
    res.update({"attack": args.name, "duration": args.duration,
                "hwm_kb": args.hwm_kb, "rss_before_kb": args.rss_before_kb,
                "rss_after_kb": args.rss_after_kb, "alive": args.alive == "yes",
                "exit": args.exit_code, "server": args.server})
    try:
        with open(args.server_stderr) as f:
            lines = f.readlines()
        stats = [line.strip() for line in lines if line.startswith("datagrams:")]
        if stats:
            res["details"].append("server: " + stats[-1])
        limiter = [line.strip() for line in lines if line.startswith("rate limiter:")]
        if limiter:
            res["details"].append("server: " + limiter[-1])
            tracked = int(re.match(r"rate limiter: (\d+) sources tracked", limiter[-1]).group(1))
            table_size = res.get("limiter_table")
            if table_size and tracked > table_size:
                res["fail"].append(f"the rate limiter tracks {tracked} sources, above its "
                                   f"table of {table_size}")
        elif res.get("limiter_table"):
            res["fail"].append("the server printed no rate limiter figures at its exit")
    except OSError:
        pass
    timeline = memory_timeline(args.mem_log, float(args.t_start), float(args.t_end))
    if timeline:
        res["details"].append(timeline)
    if res.get("server_counters"):
        res["details"].append("server counters: " + ", ".join(
            f"{k} {v:,}" for k, v in res["server_counters"].items()))
    print(json.dumps(res))


def table(args):
    rows = [json.loads(line) for line in open(args.results) if line.strip()]

    def mb(kb):
        return "n/a" if kb in (None, "") else f"{int(kb) / 1024:.1f}"

    head = ["attack", "clients / inputs", "dur s", "peak RSS MB", "RSS before MB",
            "RSS after MB", "good checked/lost", "server alive/exit", "verdict"]
    lines = []
    failed = 0
    for r in rows:
        fail = list(r.get("fail", []))
        if not r["alive"]:
            fail.append("server died during the attack")
        if str(r["exit"]) != "0":
            fail.append(f"exit code {r['exit']}")
        good = r.get("good", {})
        if good.get("lost") and r["attack"] not in ("never-read", "drain"):
            fail.append(f"good client lost {good['lost']}")
        if r.get("hwm_kb") and int(r["hwm_kb"]) > args.max_peak_mb * 1024:
            fail.append(f"peak RSS {int(r['hwm_kb']) / 1024:.0f} MB above the bound "
                        f"--max-peak-mb={args.max_peak_mb}")
        if r.get("open_at_end"):
            fail.append(f"{r['open_at_end']} connections/handlers still open 15 s after the attack")
        r["fail"] = fail
        failed += bool(fail)
        lines.append([r["attack"], r["clients"], f"{float(r['duration']):g}", mb(r["hwm_kb"]),
                      mb(r["rss_before_kb"]), mb(r["rss_after_kb"]),
                      f"{good.get('checked', 0):,}/{good.get('lost', 0):,}",
                      f"{'yes' if r['alive'] else 'NO'}/{r['exit']}",
                      "ok" if not fail else "FAIL"])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in lines:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    print()
    for r in rows:
        print(f"{r['attack']}: {r['server']}")
        for d in r.get("details", []):
            print(f"  {d}")
        g = r.get("good", {})
        if g.get("errors") or g.get("max_rtt_ms"):
            print(f"  good client: reconnects {max(g.get('connects', 1) - 1, 0)}, "
                  f"slowest answer {g.get('max_rtt_ms')} ms, errors {g.get('errors') or 'none'}")
        for f in r["fail"]:
            print(f"  FAIL: {f}")
    return 1 if failed else 0


# -- command line -----------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def attack(name, **defaults):
        p = sub.add_parser(name)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--metrics", default="", help="the server's /metrics URL")
        p.add_argument("--duration", type=float, default=15)
        p.add_argument("--good-interval", type=float, default=0.05)
        p.add_argument("--good-timeout", type=float, default=3)
        p.add_argument("--seed", type=int, default=1)
        for key, value in defaults.items():
            p.add_argument("--" + key.replace("_", "-"), type=type(value), default=value)
        return p

    attack("never-read", clients=20)
    attack("slowloris", connections=1000, interval=3.0)
    attack("tls-garbage", connections=500, rate=300.0, handshake_timeout=5.0)
    attack("churn", concurrency=16, rate=1000.0)
    attack("udp-flood", rate=10000, max_packet_size=8192)
    attack("udp-spoof", rate=10000, sources=100000, ports_per_source=4, table=1 << 20,
           max_packet_size=8192)
    attack("udp-oversize", rate=800, max_packet_size=8192)
    attack("drain", pid=0, clients=200, shutdown_timeout=2000)
    p = sub.add_parser("record")
    for opt in ("name", "attack-json", "duration", "hwm-kb", "rss-before-kb", "rss-after-kb",
                "alive", "exit-code", "server", "server-stderr", "mem-log", "t-start", "t-end"):
        p.add_argument("--" + opt, required=True)
    p = sub.add_parser("table")
    p.add_argument("results")
    p.add_argument("--max-peak-mb", type=int, default=256)
    args = ap.parse_args()

    if args.cmd == "record":
        record(args)
        return 0
    if args.cmd == "table":
        return table(args)
    raise_nofile()
    random.seed(args.seed)
    run = {"never-read": attack_never_read, "slowloris": attack_slowloris,
           "tls-garbage": attack_tls_garbage, "churn": attack_churn, "drain": attack_drain,
           "udp-flood": lambda a: attack_udp(a, "udp-flood"),
           "udp-spoof": lambda a: attack_udp(a, "udp-spoof"),
           "udp-oversize": lambda a: attack_udp(a, "udp-oversize")}[args.cmd]
    res = run(args)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
