#!/usr/bin/env python3
"""A webhook receiver for Jobline that verifies every event with the
reference Standard Webhooks library (`pip install standardwebhooks`).

    python examples/webhook-receiver.py --secret "$(jobline webhook-secret)" --port 8080

Each request is answered 204 when its signature verifies, 401 when it does
not; with --fail-first N, the first N deliveries of each event (by its
webhook-id) get a 500 instead, to watch the notifier retry. One JSON line per
request goes to stdout: what arrived and what was answered. The tests run
it as the independent receiver.
"""
import argparse
import json
import sys
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret", required=True, help="whsec_... from GET /webhook-secret")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args()
    webhook = Webhook(args.secret)
    seen = Counter()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {name.lower(): value for name, value in self.headers.items()}
            line = {"path": self.path, "webhookId": headers.get("webhook-id")}
            try:
                event = webhook.verify(body, headers)
                line.update(verified=True, type=event["type"], jobId=event["data"]["jobId"])
                # The same headers over a changed body must not verify.
                try:
                    webhook.verify(body.replace(b"job.", b"jab."), headers)
                    line["tamperedAccepted"] = True
                except WebhookVerificationError:
                    line["tamperedAccepted"] = False
                seen[line["webhookId"]] += 1
                status = 500 if seen[line["webhookId"]] <= args.fail_first else 204
            except WebhookVerificationError as error:
                line.update(verified=False, error=str(error))
                status = 401
            line["answered"] = status
            print(json.dumps(line), flush=True)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Receiver)
    print(json.dumps({"listening": server.server_address[1]}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
