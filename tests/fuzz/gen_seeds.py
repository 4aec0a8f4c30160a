#!/usr/bin/env python3
"""Write the seed inputs of the four harnesses into a directory (one file per input).

    tests/fuzz/gen_seeds.py OUTDIR

Sources: /work/shared/seeds (or $CR_SEEDS_DIR) - the JSON bodies in the partner documents;
tests/fixtures/validation_cases.json - every body (valid and invalid); the cases of
BAD_INPUT.md as raw HTTP requests (rendered here, row by row); config/demo.json and
tests/fixtures/configs/*. run.sh merges these into tests/fuzz/corpus/<harness>/ (libFuzzer
-merge=1 keeps only inputs that add coverage), so the committed corpus stays small; this script
is how it was seeded and how to re-seed it.
"""
import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SEEDS = os.environ.get("CR_SEEDS_DIR", os.path.join(ROOT, "..", "shared", "seeds"))


def out(dirname, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    os.makedirs(dirname, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(dirname, name), "wb") as f:
        f.write(data)


def json_blocks(text):
    """Balanced {...} blocks of a document that parse as JSON."""
    blocks, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                chunk = text[start:i + 1]
                try:
                    json.loads(chunk)
                    blocks.append(chunk)
                except ValueError:
                    pass
    return blocks


def seed_bodies():
    bodies = []
    if os.path.isdir(SEEDS):
        for name in sorted(os.listdir(SEEDS)):
            with open(os.path.join(SEEDS, name), encoding="utf-8", errors="replace") as f:
                bodies += json_blocks(f.read())
    return bodies


def validation_cases():
    with open(os.path.join(ROOT, "tests", "fixtures", "validation_cases.json")) as f:
        cases = json.load(f)
    res = []
    for c in cases:
        if "raw_hex" in c:
            raw = bytes.fromhex(c["raw_hex"])
        elif "raw" in c:
            raw = c["raw"].encode("utf-8", "surrogatepass")
        else:
            raw = json.dumps(c["body"], separators=(",", ":")).encode()
        res.append((c["endpoint"], raw, c["expect"] == []))
    return res


# ------------------------------------------------------------------------------- HTTP requests

HOST = "Host: gw.test\r\n"
AUTH = ("X-API-Key: demo-acme-key\r\nX-Dest-Tenant-Name: swift-haul\r\n"
        "Content-Type: application/json\r\n")
CANCEL = "POST /v1/order/cancel HTTP/1.1\r\n" + HOST + AUTH
BODY_OK = '{"order":{"order_number":"PO-1"},"reason_code":"customer"}'
HEALTHZ = "GET /healthz HTTP/1.1\r\n" + HOST + "\r\n"


def cl(body):
    return "Content-Length: %d\r\n\r\n%s" % (len(body.encode("utf-8", "surrogatepass")), body)


def bad_input_cases():
    """The rows of BAD_INPUT.md as bytes a client sends (one or more per row)."""
    c = []
    add = c.append
    add(CANCEL + "Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")        # 1
    add(CANCEL + "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n")        # 2
    add(CANCEL + "Content-Length: 4\r\nContent-Length: 5\r\n\r\n{}{}")                       # 3
    add(CANCEL + "Content-Length: 4\r\nContent-Length: 4\r\n\r\n{}{}")                       # 4
    add(CANCEL + "Content-Length: 4,4\r\n\r\n{}{}")                                          # 5
    for v in ["+4", "-1", "0x4", "1 2", ""]:                                                 # 6
        add(CANCEL + "Content-Length: %s\r\n\r\n{}{}" % v)
    add(CANCEL + "Content-Length: 99999999999999999999999\r\n\r\n{}")                        # 7
    add(CANCEL + "Content-Length: 004\r\n\r\n{}{}")                                          # 8
    add(CANCEL + "Content-Length : 4\r\n\r\n{}{}")                                           # 9
    add(CANCEL + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n")                             # 10
    add("GET /healthz HTTP/1.1\r\n" + HOST + "X-Foo: a\r\n b\r\n\r\n")                      # 11
    add(CANCEL + "X-Foo: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{}{}")  # 12
    add("GET /healthz HTTP/1.1\r\n " + HOST + "\r\n")                                        # 13
    add("GET /healthz HTTP/1.1\nHost: a\nX-A: b\n\n")                                        # 14
    add("GET /healthz HTTP/1.1\nHost: a\r\n\r\n")                                            # 15
    add("GET /healthz HTTP/1.1\r\n" + HOST + "X-Abc: \rxTransfer-Encoding: chunked\r\n\r\n")  # 16
    add(CANCEL + "Foo:\rAContent-Length: 10\r\n\r\n{}")                                      # 17
    add("GET /healthz HTTP/1.1\r\n" + HOST + "\r\n\rXGET /healthz HTTP/1.1\r\n\r\n")         # 18
    add("GET / HTTP/1.1\rHost: a\r\n\r\n")                                                   # 19
    for b in ["\x00", "\x01", "\x7f"]:                                                       # 20
        add("GET /healthz HTTP/1.1\r\n" + HOST + "X-A: a%sb\r\n\r\n" % b)
    add("GET /healthz HTTP/1.1\r\n" + HOST + "X@Y: a\r\n\r\n")                               # 21
    add("GET /healthz HTTP/1.1\r\n" + HOST + "X\u00e9: a\r\n\r\n")
    add("GET /healthz HTTP/1.1\r\n" + HOST + ": b\r\n\r\n")                                  # 22
    add("GET /healthz HTTP/1.1\r\n" + HOST + "NoColon\r\n\r\n")                              # 23
    add(CANCEL + "Transfer_Encoding: chunked\r\nContent-Length: 4\r\n\r\n{}{}")              # 24
    add(CANCEL + "Content_Length: 4\r\n\r\n{}{}")
    add("GET /v1/order?order_number=PO-1 HTTP/1.1\r\n" + HOST + "X_API_Key: demo-acme-key\r\n\r\n")
    for te in ["chunked, identity", "gzip, chunked", "identity", "xchunked", "chunkedchunked",
               "", ", chunked", "chunked,", "\x0cchunked", "\x0bchunked"]:                   # 25-31
        add(CANCEL + "Transfer-Encoding: %s\r\n\r\n0\r\n\r\n" % te)
    add(CANCEL + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")  # 28
    for te in ["ChUnKeD", "\tchunked", "chunked "]:                                          # 32
        add(CANCEL + "Transfer-Encoding: %s\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (te, len(BODY_OK), BODY_OK))
    add("POST /v1/order/cancel HTTP/1.0\r\n" + HOST + AUTH +
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")                                       # 33
    for sz in ["5x", "+5", "-5", "5_0", " 5", "0x5", "5 "]:                                  # 34
        add(CANCEL + "Transfer-Encoding: chunked\r\n\r\n%s\r\nhello\r\n0\r\n\r\n" % sz)
    add(CANCEL + "Transfer-Encoding: chunked\r\n\r\n" + "f" * 18 + "\r\nhello\r\n0\r\n\r\n")  # 35
    add(CANCEL + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n")                  # 36
    add(CANCEL + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n")                  # 37
    add(CANCEL + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\n")                  # 38
    for ext in [";a=\rb", ";a=\nb", ";a=\x01", ';a="b', ";"]:                               # 39
        add(CANCEL + "Transfer-Encoding: chunked\r\n\r\n2%s\r\n{}\r\n0\r\n\r\n" % ext)
    add(CANCEL + "Transfer-Encoding: chunked\r\n\r\n%x;a=b\r\n%s\r\n0\r\n\r\n" % (len(BODY_OK), BODY_OK))  # 40
    add(CANCEL + "Transfer-Encoding: chunked\r\n\r\n%04x\r\n%s\r\n0000\r\n\r\n" % (len(BODY_OK), BODY_OK))
    for tr in ["Content-Length: 50", "Host: evil", "Transfer-Encoding: chunked"]:            # 41
        add(CANCEL + "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n%s\r\n\r\n" % (len(BODY_OK), BODY_OK, tr))
    add("POST /v1/order/cancel HTTP/1.1\r\n" + HOST + "X-Dest-Tenant-Name: swift-haul\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n"
        "X-API-Key: demo-acme-key\r\n\r\n" % (len(BODY_OK), BODY_OK))                        # 42
    add("GET /healthz HTTP/1.1\r\n\r\n")                                                    # 43
    for h in ["Host: a\r\nHost: b", "Host: a, b", "Host:", "Host: user@a"]:                  # 44
        add("GET /healthz HTTP/1.1\r\n%s\r\n\r\n" % h)
    add("GET /healthz HTTP/1.0\r\n\r\n")                                                    # 45
    add("GET / HTTP/2.0\r\n" + HOST + "\r\n")                                                # 46
    add("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    add("GET /\r\n\r\n")                                                                     # 47
    add("GET  /healthz HTTP/1.1\r\n" + HOST + "\r\n")                                        # 48
    for m in ["post /v1/order/cancel HTTP/1.1", "FOO / HTTP/1.1", "GET\t/ HTTP/1.1"]:        # 49
        add(m + "\r\n" + HOST + "\r\n")
    add("CONNECT 127.0.0.1:6379 HTTP/1.1\r\nHost: 127.0.0.1:6379\r\n\r\n")                   # 50
    add("GET /healthz HTTP/1.1\r\n" + HOST + "Connection: Upgrade, HTTP2-Settings\r\n"
        "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n" + HEALTHZ)        # 51
    add("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + "\x00" * 32 + "\x00\x20\xc0\x2b")   # 52
    add("GET v1/order HTTP/1.1\r\n" + HOST + "\r\n")                                         # 53
    add("GET /v1/\x00order HTTP/1.1\r\n" + HOST + "\r\n")
    add("GET /v1/ order HTTP/1.1\r\n" + HOST + "\r\n")
    add("POST http://evil/v1/order/cancel HTTP/1.1\r\n" + HOST + AUTH + cl(BODY_OK))         # 54
    for path in ["/v1/order/%2e%2e/admin/reload", "/v1/saga/..%2f..%2f", "/v1/saga/%00"]:    # 55
        add("GET %s HTTP/1.1\r\n" % path + HOST + "X-API-Key: demo-admin-key\r\n\r\n")
    add(CANCEL + "\r\n")                                                                     # 56
    add(CANCEL + "Content-Length: 30\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n")         # 57
    add(CANCEL + "Content-Length: 58\r\n\r\n{\"order\"")                                     # 58
    add(CANCEL + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    add("GET /healthz HTTP/1.1\r\n" + HOST + "X-Big: " + "a" * 4100 + "\r\n\r\n")            # 59
    add("GET /healthz HTTP/1.1\r\n" + HOST + "".join("X-H%d: v\r\n" % i for i in range(40)) + "\r\n")
    add("GET /" + "a" * 1100 + " HTTP/1.1\r\n" + HOST + "\r\n")                              # 60
    add(CANCEL + "Content-Length: 9000\r\n\r\n")                                             # 61
    add(CANCEL + "Transfer-Encoding: chunked\r\n\r\n" + "1000\r\n" + "a" * 4096 + "\r\n" +
        "1000\r\n" + "a" * 4096 + "\r\n" + "1000\r\n" + "a" * 100)                          # 62
    add(CANCEL + "Expect: 100-continue\r\n" + cl(BODY_OK))                                   # 63
    add(CANCEL + "Expect: 100-continue\r\nContent-Length: 9000\r\n\r\n")                     # 64
    add(CANCEL + "Expect: foo\r\n" + cl(BODY_OK))                                            # 65
    add("DELETE /v1/order/cancel HTTP/1.1\r\n" + HOST + "\r\n")                              # 66
    for ct in ["text/plain", "application/json; charset=utf-16"]:                            # 67
        add("POST /v1/order/cancel HTTP/1.1\r\n" + HOST + "X-API-Key: demo-acme-key\r\n"
            "X-Dest-Tenant-Name: swift-haul\r\nContent-Type: %s\r\n" % ct + cl(BODY_OK))
    add("POST /v1/order/cancel HTTP/1.1\r\n" + HOST + "X-API-Key: demo-acme-key\r\n"
        "X-Dest-Tenant-Name: swift-haul\r\n" + cl(BODY_OK))
    add(CANCEL + "Content-Type: text/plain\r\n" + cl(BODY_OK))                               # 68
    add("GET /v1/order?order_number=PO-1 HTTP/1.1\r\n" + HOST +
        "X-API-Key: demo-acme-key\r\nX-API-Key: demo-acme-key\r\n\r\n")                      # 69
    add("GET /v1/order?order_number=PO-1 HTTP/1.1\r\n" + HOST +
        "X-API-Key: demo-acme-key\r\nAuthorization: Bearer demo-swift-key\r\n\r\n")
    add(CANCEL + "Idempotency-Key: " + "k" * 256 + "\r\n" + cl(BODY_OK))                     # 70
    add(CANCEL + "Idempotency-Key: a\x01b\r\n" + cl(BODY_OK))
    add("GET /healthz HTTP/1.1\r\n" + HOST + "X-Request-Id: caf\u00e9\r\n\r\n")              # 71
    add("GET /healthz HTTP/1.1\r\n" + HOST + "X-Request-Id: " + "r" * 129 + "\r\n\r\n")
    for body in ['{"order":1,"order":2}', '\ufeff' + BODY_OK, BODY_OK + "x", BODY_OK + BODY_OK,
                 '{"order":{"order_number":"\\u0000"}}', '{"order":{"order_number":"a\x00"}}',
                 '{"order":{"order_number":"\\ud800"}}', '{"quantity":1e999}',
                 '{"quantity":1180591620717411303424}', '{"quantity":NaN}',
                 "[" * 2049 + "]" * 2049, "[" * 4000, "[]", '"x"', ""]:                       # 72-78
        add(CANCEL + cl(body))
    for raw in [b"\xc0\xaf", b"\xff"]:
        add((CANCEL + "Content-Length: %d\r\n\r\n" % (len(raw) + 2)).encode() + b'"' + raw + b'"')
    add(CANCEL + cl(BODY_OK))                                                                # 79
    add("GET /healthz HTTP/1.1\r\nHost: a, b\r\n\r\n" + HEALTHZ)                             # 80
    return c


MUTATION_PATHS = {"cancel": "/v1/order/cancel", "reset": "/v1/order/reset",
                  "update_status": "/v1/order/update_status", "create": "/v1/order/create",
                  "accept": "/v1/order/accept", "bol": "/v1/order/bol", "drop": "/v1/order/drop"}


def api_requests(cases):
    c = []
    keys = ["demo-acme-key", "demo-swift-key", "demo-kibo-key", "demo-tecspal-key"]
    dests = ["swift-haul", "acme-supply", "tecspal-hw", "kibo-retail"]
    n = 0
    for endpoint, raw, valid in cases:
        if not valid and n % 3:
            n += 1
            continue
        k = n % 4
        n += 1
        head = ("POST %s HTTP/1.1\r\n" % MUTATION_PATHS[endpoint] + HOST +
                "X-API-Key: %s\r\nX-Dest-Tenant-Name: %s\r\nContent-Type: application/json\r\n"
                % (keys[k], dests[k]))
        if n % 5 == 0:
            head += "Idempotency-Key: idem-%d\r\n" % n
        if n % 7 == 0:
            head += "X-Request-Id: req-%d\r\n" % n
        c.append(head.encode() + b"Content-Length: %d\r\n\r\n" % len(raw) + raw)
        if valid and n % 4 == 0:
            c.append(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(raw) + raw +
                     b"\r\n0\r\n\r\n")
    sid = "64b7cf5a86d9755df3a6c5aa"
    reads = [
        ("GET", "/v1/saga/" + sid, "demo-acme-key"),
        ("POST", "/v1/saga/%s/retry" % sid, "demo-acme-key"),
        ("GET", "/v1/order?order_number=PO-1", "demo-acme-key"),
        ("GET", "/v1/order?order_id=64b7cf5a86d9755df3a6c501", "demo-swift-key"),
        ("GET", "/v1/order/logs?order_number=PO%2D1&x=y", "demo-acme-key"),
        ("GET", "/v1/admin/sagas?status=error&tenant=acme-supply&limit=5&cursor=0", "demo-admin-key"),
        ("GET", "/v1/admin/sagas/" + sid, "demo-admin-key"),
        ("POST", "/v1/admin/sagas/%s/retry" % sid, "demo-admin-key"),
        ("GET", "/v1/admin/counts", "demo-admin-key"),
        ("POST", "/v1/admin/reload", "demo-admin-key"),
        ("GET", "/metrics", None), ("GET", "/openapi.json", None), ("GET", "/readyz", None),
    ]
    for m, path, key in reads:
        h = "%s %s HTTP/1.1\r\n" % (m, path) + HOST
        if key:
            h += ("Authorization: Bearer %s\r\n" if "retry" in path else "X-API-Key: %s\r\n") % key
        if m == "POST":
            h += "Content-Length: 0\r\n"
        c.append(h + "\r\n")
    c.append(HEALTHZ + CANCEL + "Content-Length: 2\r\n\r\n{}" + "GET /readyz HTTP/1.1\r\n" + HOST + "\r\n")
    c.append(HEALTHZ + CANCEL + cl(BODY_OK) + "GET /readyz HTTP/1.1\r\n" + HOST + "\r\n")
    c.append("\r\n\r\n" + HEALTHZ)
    c.append("GET /healthz HTTP/1.0\r\n" + HOST + "Connection: keep-alive\r\n\r\n" * 1 + HEALTHZ)
    c.append("POST /v1/order/cancel HTTP/1.1\r\n" + HOST + "X-API-Key: demo-acme-key\r\n"
             "X-Origin-Instance-Name: acme-test\r\nX-Tenant-Name: acme-supply\r\n"
             "X-Dest-Tenant-Name: swift-haul\r\nContent-Type: application/json; charset=utf-8\r\n" + cl(BODY_OK))
    return c


def http_prefixes(i):
    """[flags, split class, seed lo, seed hi] variants for one request."""
    return [bytes([0, 0, i & 255, 0]), bytes([1, 0x11, i & 255, 1]), bytes([2, 0x23, i & 255, 2]),
            bytes([3, 0x28, i & 255, 3]), bytes([4, 0x05, i & 255, 4])]


# ------------------------------------------------------------------------------- classify

def classify_inputs(bodies):
    res = []
    responses = [
        (200, "", '{"statusCode":200,"message":"Request successful","envelop":[{"id":"3178e7e9-0fe9-47ad-b69a-e5604a990822","status":"CANCELLED"}]}'),
        (200, "", '{"order_number":"SW-1"}'),
        (201, "", '{"order_number":"' + "9" * 65 + '"}'),
        (400, "", '{"error":"Bad Request","message":"Order request not found","statusCode":400}'),
        (401, "", '{"error":"Unauthorized","message":"Unauthorized access","statusCode":401}'),
        (403, "", '{"detail":"forbidden"}'),
        (404, "", "not json"),
        (409, "", '{"message":""}'),
        (422, "", '{"detail":[{"loc":["body"],"msg":"x","type":"missing"}]}'),
        (429, "Retry-After: 1\r\n", ""),
        (500, "", '{"detail":"boom"}'),
        (503, "", ""),
        (301, "Location: http://evil/\r\n", ""),
        (308, "Location: /x\r\n", ""),
        (204, "", ""),
        (100, "", ""),
    ] + [(200 if i % 2 else 400, "", b) for i, b in enumerate(bodies)]
    for i, (status, hdrs, body) in enumerate(responses):
        head = "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%s" % (status, hdrs)
        hb = head.encode()[:255]
        pre = bytes([0, i % 7, (status >> 8) & 255, status & 255, 0, 10, len(hb)])
        res.append(pre + hb + body.encode())
    for e in range(6):  # transport errors
        res.append(bytes([0, 0, 0, 0, 0xd0 + e, 10, 0]))
    return res


def build_inputs(cases):
    res = []
    orders = [
        {"order_id": "64b7cf5a86d9755df3a6c501", "order_number": "PO-1", "origin_tenant": "acme-supply"},
        {"order_id": "x\r\nInjected: 1"}, {},
    ]
    refs = [
        {"location": {"source_id": "SH-HOU", "mapping_id": "64b7cf5a86d9755df3a6c507"},
         "terminal": {"source_id": "SH-HOU"}, "product": {"source_name": "Diesel"},
         "site": {"source_id": "SH-ATX12"},
         "lines": [{"product": {"source_id": "SH-DSL"}, "terminal": {"source_id": "SH-HOU"},
                    "site": {"source_id": "SH-ATX12"}}]},
        {},
    ]
    nums = ["1010101", "3178e7e9-0fe9-47ad-b69a-e5604a990822", "PO-1\r\nX-Evil: 1", "../../x",
            "9007199254740993", "0", ""]
    actions = ["cancel", "reset", "update_status", "create", "bol", "drop", "accept"]
    i = 0
    for endpoint, raw, valid in cases:
        if not valid:
            continue
        ai = actions.index(endpoint)
        for cp in range(4):
            pre = bytes([1, ai, cp | ((i % 4) << 2), i % 4, 9])
            doc = raw + json.dumps(orders[i % 3]).encode() + json.dumps(refs[i % 2]).encode()
            res.append(pre + doc + nums[(i + cp) % len(nums)].encode())
            i += 1
    return res


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    base = sys.argv[1]
    bodies = seed_bodies()
    cases = validation_cases()

    d = os.path.join(base, "fuzz_validate")
    for _, raw, _ in cases:
        out(d, raw)
    for b in bodies:
        out(d, b)

    d = os.path.join(base, "fuzz_http")
    reqs = [r.encode("utf-8", "surrogatepass") if isinstance(r, str) else r
            for r in bad_input_cases() + api_requests(cases)]
    for i, r in enumerate(reqs):
        for pre in http_prefixes(i):
            out(d, pre + r)
    # each bad case as the second request on a keep-alive connection
    for i, r in enumerate(reqs[:90]):
        out(d, bytes([0, 0, i & 255, 9]) + HEALTHZ.encode() + r)

    d = os.path.join(base, "fuzz_classify")
    for x in classify_inputs(bodies) + build_inputs(cases):
        out(d, x)

    d = os.path.join(base, "fuzz_config")
    cfgs = [os.path.join(ROOT, "config", "demo.json")]
    fx = os.path.join(ROOT, "tests", "fixtures", "configs")
    cfgs += [os.path.join(fx, n) for n in sorted(os.listdir(fx))]
    for p in cfgs:
        with open(p, "rb") as f:
            out(d, f.read())
    with open(os.path.join(ROOT, "config", "demo.json")) as f:
        demo = json.load(f)
    t = demo["tenants"][0]
    t["notify_url"] = "https://notify.example/hook?x=1"
    t["rate_limit"] = {"per_second": 5.5, "burst": 10}
    demo["redis"]["url"] = "redis://user:s3cretpassw0rd@[::1]:6380/3"
    demo["log"]["level"] = "debug"
    out(d, json.dumps(demo, indent=1))
    for url in ["redis://127.0.0.1:6379/0", "redis://:pw@h:1/2", "redis://u:p%40ss@[::1]:65535/15",
                "redis://h", "redis://h:0", "redis://%zz@h", "redis://[::1", "rediss://h"]:
        out(d, url)


if __name__ == "__main__":
    main()
