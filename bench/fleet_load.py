#!/usr/bin/env python3
"""bench/fleet_load.py — the load and measurement side of bench/fleet.sh (standard library only).

Subcommands (each prints one JSON object on stdout):

  throughput --sensors DIR,... --investigators DIR,... [--responders DIR,...] --events N --batch B
             --conns C --tag T [--timeout S]
      Posts N attack events (each from a distinct 2001:db8:T::/48 address) to the sensors
      (round-robin, C keep-alive connections, B events per POST /v1/events) as fast as they take them,
      then polls /metrics until the investigators' summed
      sentinel_bus_link_messages_total{role="investigator",outcome="acked"} (delta from the start)
      reaches the sensors' summed outcome="published" (delta), that sum being stable.
      Reports the time from the first post to that moment and events/s.

  throughput --no-wait: only posts (the backlog for `drain`).

  drain --investigators DIR,... --expect N
      Polls the investigators' /metrics (they may not be started yet) every 20 ms; reports the
      acked rate from the first poll that sees an ack to the one that sees N.

  latency --sensor DIR --responders DIR,... --rate R --seconds S --tag T [--settle S]
      Posts one attack event per request at R/s for S s (from distinct 198.51.100.0/24 and
      2001:db8:T::/48 addresses), notes the wall-clock time of each HTTP answer, then reads every
      responder's GET /v1/decisions and, per event (matched by trace_id), takes the latest `created`
      over the responders. Latency = that `created` - the answer time.

A DIR is a daemon's data dir: its api.addr and admin.key are read from it. Traffic goes to 127.0.0.1.
"""
import argparse
import datetime as dt
import http.client
import json
import re
import statistics
import sys
import threading
import time

UA = "hydra v9"


class Node:
    def __init__(self, data_dir):
        with open(f"{data_dir}/api.addr") as f:
            host, port = f.read().strip().rsplit(":", 1)
        with open(f"{data_dir}/admin.key") as f:
            self.key = f.read().strip()
        self.host, self.port = host, int(port)
        self.dir = data_dir

    def conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def request(self, method, path, body=None, conn=None):
        own = conn is None
        c = conn or self.conn()
        headers = {"authorization": f"Bearer {self.key}"}
        if body is not None:
            headers["content-type"] = "application/json"
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            return r.status, data
        finally:
            if own:
                c.close()

    def metrics(self):
        status, data = self.request("GET", "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics on {self.dir}: {status}")
        return data.decode()


def link_counter(text, role, outcome):
    m = re.search(
        r'^sentinel_bus_link_messages_total\{role="%s",outcome="%s"\} (\S+)$' % (role, outcome),
        text,
        re.M,
    )
    return float(m.group(1)) if m else 0.0


def summed(nodes, role, outcome):
    return sum(link_counter(n.metrics(), role, outcome) for n in nodes)


def attack(ip):
    return {"src_ip": ip, "failed_logins": 40, "user_agent": UA, "path": "/login"}


def v6(tag, i):
    # 2001:db8:<tag>:<hi>::<lo>: distinct for i < 2**32
    return f"2001:db8:{tag:x}:{i >> 16:x}::{(i & 0xFFFF) + 1:x}"


def nodes(arg):
    return [Node(d) for d in arg.split(",") if d]


def throughput(a):
    sensors, invs = nodes(a.sensors), nodes(a.investigators) if a.investigators else []
    pub0 = summed(sensors, "sensor", "published")
    ack0 = summed(invs, "investigator", "acked")
    batches = []
    for start in range(0, a.events, a.batch):
        n = min(a.batch, a.events - start)
        batches.append(json.dumps([attack(v6(a.tag, start + j)) for j in range(n)]).encode())
    lock = threading.Lock()
    nxt = [0]
    stats = {"accepted": 0, "rejected": 0, "non2xx": 0, "retries": 0}

    def worker(k):
        node = sensors[k % len(sensors)]
        c = node.conn()
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(batches):
                break
            while True:
                try:
                    status, data = node.request("POST", "/v1/events", batches[i], conn=c)
                except (OSError, http.client.HTTPException):
                    c.close()
                    c = node.conn()
                    with lock:
                        stats["retries"] += 1
                    continue
                if status in (429, 503):  # not taken now: retry (as fast as they take them)
                    with lock:
                        stats["retries"] += 1
                    time.sleep(0.01)
                    continue
                break
            with lock:
                if 200 <= status < 300:
                    body = json.loads(data)
                    stats["accepted"] += body.get("accepted", 0)
                    stats["rejected"] += body.get("rejected", 0)
                else:
                    stats["non2xx"] += 1
        c.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(a.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_posted = time.monotonic() - t0
    if a.no_wait:
        print(json.dumps({"events": a.events, "accepted": stats["accepted"], "non2xx": stats["non2xx"],
                          "retries": stats["retries"], "post_secs": round(t_posted, 3),
                          "published": summed(sensors, "sensor", "published") - pub0}))
        return
    cand, cand_pub, pub, ack, t_done = None, None, 0.0, 0.0, None
    deadline = time.monotonic() + a.timeout
    timed_out = False
    while True:
        now = time.monotonic() - t0
        pub = summed(sensors, "sensor", "published") - pub0
        ack = summed(invs, "investigator", "acked") - ack0
        if pub > 0 and ack >= pub:
            if cand is None:
                cand, cand_pub = now, pub
            elif pub == cand_pub:
                # done when acked first reached published; published did not move on the next poll
                t_done = cand
                break
            else:
                cand = None
        else:
            cand = None
        if time.monotonic() > deadline:
            timed_out, t_done = True, now
            break
        time.sleep(0.02)
    print(
        json.dumps(
            {
                "events": a.events,
                "accepted": stats["accepted"],
                "rejected": stats["rejected"],
                "non2xx": stats["non2xx"],
                "retries": stats["retries"],
                "published": pub,
                "acked": ack,
                "post_secs": round(t_posted, 3),
                "post_eps": round(stats["accepted"] / t_posted, 1) if t_posted else None,
                "secs": round(t_done, 3),
                "eps": round(pub / t_done, 1) if t_done else None,
                "timed_out": timed_out,
            }
        )
    )


def drain(a):
    """Investigators (being started now) drain a backlog of --expect alerts: the rate from the
    first poll that sees an ack to the one that sees them all, and the time from now to the end."""
    dirs = [d for d in a.investigators.split(",") if d]
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    up = {}
    t_first = a_first = t_end = None
    while time.monotonic() < deadline:
        for d in dirs:
            if d not in up:
                try:
                    up[d] = Node(d)
                except (OSError, ValueError):
                    pass
        total = 0.0
        now = time.monotonic() - t0
        for n in up.values():
            try:
                total += link_counter(n.metrics(), "investigator", "acked")
            except (OSError, http.client.HTTPException, RuntimeError):
                pass
        if t_first is None and total > 0:
            t_first, a_first = now, total
        if total >= a.expect:
            t_end = now
            break
        time.sleep(0.02)
    out = {"expect": a.expect, "acked": total, "timed_out": t_end is None,
           "first_seen_secs": None if t_first is None else round(t_first, 3), "acked_at_first": a_first}
    if t_end is not None and t_first is not None and t_end > t_first:
        out["eps"] = round((a.expect - a_first) / (t_end - t_first), 1)
        out["secs"] = round(t_end - t_first, 3)
        out["from_start_secs"] = round(t_end, 3)
    print(json.dumps(out))


def parse_ts(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def decisions(node):
    out, cursor = [], None
    while True:
        path = "/v1/decisions?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        status, data = node.request("GET", path)
        if status != 200:
            raise RuntimeError(f"/v1/decisions on {node.dir}: {status} {data[:200]!r}")
        page = json.loads(data)
        out += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def latency(a):
    sensor, resps = Node(a.sensor), nodes(a.responders)
    n = int(a.rate * a.seconds)
    sent = {}  # trace_id -> (send wall time, answer wall time)
    c = sensor.conn()
    t0 = time.monotonic()
    behind = 0
    for i in range(n):
        due = t0 + i / a.rate
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        else:
            behind += 1
        ip = f"198.51.100.{i % 250 + 1}" if i < 250 and a.v4 else v6(a.tag, i)
        body = json.dumps([attack(ip)]).encode()
        ts = time.time()
        status, data = sensor.request("POST", "/v1/events", body, conn=c)
        ta = time.time()
        if status != 200:
            print(f"latency: POST answered {status}: {data[:200]!r}", file=sys.stderr)
            continue
        sent[json.loads(data)["trace_id"]] = (ts, ta)
    c.close()
    # wait until every responder holds a decision for every event (or the settle time passes)
    deadline = time.monotonic() + a.settle
    while True:
        per = [{d["trace_id"]: parse_ts(d["created"]) for d in decisions(r)} for r in resps]
        missing = sum(1 for t in sent for p in per if t not in p)
        if missing == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    lat_answer, lat_send, first = [], [], []
    complete = 0
    for t, (ts, ta) in sent.items():
        cs = [p[t] for p in per if t in p]
        if len(cs) < len(resps):
            continue
        complete += 1
        last = max(cs)
        lat_answer.append((last - ta) * 1000)
        lat_send.append((last - ts) * 1000)
        first.append((min(cs) - ta) * 1000)

    def summ(xs):
        return {
            "p50": round(pct(xs, 50), 1) if xs else None,
            "p95": round(pct(xs, 95), 1) if xs else None,
            "max": round(max(xs), 1) if xs else None,
            "min": round(min(xs), 1) if xs else None,
        }

    print(
        json.dumps(
            {
                "events": n,
                "answered": len(sent),
                "complete": complete,
                "missing": missing,
                "sent_late": behind,
                "last_from_answer_ms": summ(lat_answer),
                "last_from_send_ms": summ(lat_send),
                "first_from_answer_ms": summ(first),
            }
        )
    )


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--sensors", required=True)
    t.add_argument("--investigators", default="")
    t.add_argument("--no-wait", action="store_true", help="only post (the backlog for `drain`)")
    t.add_argument("--events", type=int, default=5000)
    t.add_argument("--batch", type=int, default=50)
    t.add_argument("--conns", type=int, default=4)
    t.add_argument("--tag", type=int, default=1)
    t.add_argument("--timeout", type=float, default=120)
    l = sub.add_parser("latency")
    l.add_argument("--sensor", required=True)
    l.add_argument("--responders", required=True)
    l.add_argument("--rate", type=float, default=20)
    l.add_argument("--seconds", type=float, default=10)
    l.add_argument("--tag", type=int, default=0xF00)
    l.add_argument("--settle", type=float, default=20)
    l.add_argument("--v4", action="store_true", help="the first 250 sources from 198.51.100.0/24")
    dr = sub.add_parser("drain")
    dr.add_argument("--investigators", required=True)
    dr.add_argument("--expect", type=int, required=True)
    dr.add_argument("--timeout", type=float, default=120)
    a = p.parse_args()
    {"throughput": throughput, "latency": latency, "drain": drain}[a.cmd](a)


if __name__ == "__main__":
    main()
