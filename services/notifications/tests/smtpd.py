# SPDX-License-Identifier: MIT
# A mail sink for the notifications tests: an aiosmtpd server on loopback
# that writes every message it accepts to <dir>/<pid>-<n>.json as
# {"mail_from", "rcpt_tos", "data"} (data: the message exactly as
# received, decoded as UTF-8), then prints "listening <port>" once it
# accepts connections. Stops on SIGTERM or SIGINT.
#
#   /usr/bin/python3 smtpd.py --port 2525 --dir /tmp/maildir
import argparse
import itertools
import json
import os
import signal
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        with self.lock:
            n = next(self.counter)
        doc = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": raw.decode("utf-8", "replace"),
        }
        tmp = os.path.join(self.directory, f".{os.getpid()}-{n}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        # Rename, so a reader never sees half a message.
        os.rename(tmp, os.path.join(self.directory, f"{os.getpid()}-{n:06d}.json"))
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Sink(args.dir), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"listening {args.port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    controller.stop()


if __name__ == "__main__":
    main()
