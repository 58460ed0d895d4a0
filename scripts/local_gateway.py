#!/usr/bin/env python3
"""API Gateway's HTTP API, locally: payload 2.0 events to the functions under `cargo lambda watch`.

`cargo lambda watch` serves each function at /lambda-url/<function>/<path> and invokes it at
/2015-03-31/functions/<function>/invocations; API Gateway routes /auth/... and /.well-known/...
to them. This serves API Gateway's paths on 127.0.0.1:PORT, so that schemathesis
(docs/openapi.yaml) and clients see locally what they see behind it. Each request becomes the
event API Gateway sends (payload format 2.0: cookies apart, headers lowercased and joined, a body
that is not UTF-8 base64-encoded), sent to the function template.yaml's HttpApi events route it
to (Path with {param} segments, Method); the function's answer (status, headers, cookies, body)
goes back as API Gateway sends it. An unrouted request gets API Gateway's own 404. Not emulated:
API Gateway's CORS configuration (preflights reach the functions, as at function URLs), stages,
the Lambda authorizer, throttling. Standard library only.

Usage: python3 scripts/local_gateway.py --port P --lambda-port L [--template template.yaml]
Prints "listening on http://127.0.0.1:P" once it accepts requests (--port 0: any free port).
"""

import argparse
import base64
import contextlib
import http.client
import json
import re
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TIMEOUT = 60  # seconds, each way
# API Gateway's own answers, when no route matches and when the function fails.
NOT_FOUND = b'{"message":"Not Found"}'
INTERNAL_ERROR = b'{"message":"Internal Server Error"}'


def children(lines):
    """{key: its lines} of the mapping entries at the shallowest indentation of `lines`."""
    indent = lambda line: len(line) - len(line.lstrip(" "))
    base, out = min(map(indent, lines), default=0), []
    for line in lines:
        if indent(line) == base:
            out.append((line.strip().split(":", 1)[0].strip("\"' "), [line]))
        elif out:
            out[-1][1].append(line)
    return dict(out)


def read_routes(text):
    """[(METHOD, path segments, binary)] of every function's HttpApi events. No YAML library:
    CloudFormation tags (!Ref, !If, ...) and flow or block style are all one to it."""
    lines = [l.rstrip() for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    routes = []
    for logical_id, block in children(children(lines).get("Resources", [""])[1:]).items():
        binary = re.search(r"(?<![\w])Binary:\s*[\"']?([\w-]+)", "\n".join(block))
        name = binary.group(1) if binary else logical_id.removesuffix("Function").lower()
        properties = children(block[1:]).get("Properties", [""])
        for event in children(children(properties[1:]).get("Events", [""])[1:]).values():
            text = "\n".join(event)
            path = re.search(r"(?<![\w])Path:\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s,]+))", text)
            if not path or not re.search(r"(?<![\w])Type:\s*[\"']?HttpApi\b", text):
                continue
            value = next(g for g in path.groups() if g is not None)
            value = value[: len(value) - max(0, value.count("}") - value.count("{"))]  # a flow mapping's end
            method = re.search(r"(?<![\w])Method:\s*[\"']?([A-Za-z]+)", text)
            routes.append(((method.group(1) if method else "ANY").upper(), value.split("/"), name))
    return routes


def route(routes, method, path):
    """The binary of the most specific route for `method` and the raw `path`, or None."""
    best, best_score, segments = None, None, path.split("/")
    for route_method, template, name in routes:
        fits = len(segments) == len(template) or (len(segments) > len(template) and template[-1].endswith("+}"))
        fits = fits and all((t.startswith("{") and s) or t == s for t, s in zip(template, segments))
        if route_method in (method, "ANY") and fits:
            score = (sum(not t.startswith("{") for t in template), route_method == method)
            if best_score is None or score > best_score:
                best, best_score = name, score
    return best


class Gateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = TIMEOUT
    routes, lambda_port = [], 0

    def __getattr__(self, name):  # do_GET, do_POST, ... for every method
        return self.proxy if name.startswith("do_") else super().__getattribute__(name)

    def read_body(self):
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return self.rfile.read(max(0, int(self.headers.get("Content-Length") or 0)))
        body = b""
        while size := int(self.rfile.readline().split(b";")[0], 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return body

    def answer(self, status, headers, body):
        has_body = self.command != "HEAD" and status >= 200 and status not in (204, 304)
        self.send_response_only(status)
        for name, value in headers + ([("Content-Length", str(len(body)))] if has_body else []):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body if has_body else b"")
        self.log_request(status)

    def event(self, path, query, body):
        """The payload 2.0 event API Gateway would send for this request."""
        headers, cookies = {}, []
        for name, value in self.headers.items():
            if name.lower() == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
            elif name.lower() not in ("connection", "keep-alive", "transfer-encoding", "expect"):
                key = name.lower()
                headers[key] = f"{headers[key]},{value}" if key in headers else value
        try:
            text, encoded = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        now = time.time()
        return {
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
            **({"cookies": cookies} if cookies else {}), "headers": headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": "local", "domainName": self.headers.get("Host", "127.0.0.1"),
                "domainPrefix": "local", "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
                "http": {"method": self.command, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": self.client_address[0], "userAgent": self.headers.get("User-Agent", "")},
            },
            **({"body": text} if body else {}), "isBase64Encoded": encoded,
        }

    def proxy(self):
        body = self.read_body()
        path, _, query = self.path.partition("?")
        if (function := route(self.routes, self.command, path)) is None:
            return self.answer(404, [("Content-Type", "application/json")], NOT_FOUND)
        upstream = http.client.HTTPConnection("127.0.0.1", self.lambda_port, timeout=TIMEOUT)
        try:
            event = json.dumps(self.event(path, query, body)).encode()
            upstream.request("POST", f"/2015-03-31/functions/{function}/invocations", event, {"Content-Type": "application/json"})
            response = upstream.getresponse()
            answer = json.loads(response.read() or b"null")
            if response.status != 200 or response.getheader("X-Amz-Function-Error") or not isinstance(answer, dict):
                # What API Gateway answers when the integration fails.
                return self.answer(500, [("Content-Type", "application/json")], INTERNAL_ERROR)
            headers = [(n, v) for n, v in (answer.get("headers") or {}).items() if n.lower() not in ("content-length", "transfer-encoding")]
            headers += [("Set-Cookie", cookie) for cookie in answer.get("cookies") or []]
            payload = answer.get("body") or ""
            payload = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode()
            self.answer(int(answer.get("statusCode", 200)), headers, payload)
        except (OSError, http.client.HTTPException, ValueError) as e:
            error = json.dumps({"message": f"{function}: {e!r}"}).encode()
            self.answer(504 if isinstance(e, TimeoutError) else 502, [("Content-Type", "application/json")], error)
        finally:
            upstream.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lambda-port", type=int, required=True)
    parser.add_argument("--template", default="template.yaml")
    args = parser.parse_args()
    with open(args.template, encoding="utf-8") as f:
        Gateway.routes, Gateway.lambda_port = read_routes(f.read()), args.lambda_port
    if not Gateway.routes:
        parser.error(f"no HttpApi routes in {args.template}")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Gateway)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
