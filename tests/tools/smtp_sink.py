"""A real SMTP server on loopback for the email tests (aiosmtpd).

Usage: smtp_sink.py MAILDIR. Listens on 127.0.0.1 on a free port, prints "PORT <n>" once
ready, and writes every message it accepts to MAILDIR/<n>.eml (envelope sender and
recipients in the first lines). Runs until killed or until its stdin closes.
"""

import asyncio
import os
import socket
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, maildir):
        self.maildir = maildir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.maildir, "%04d.eml" % self.count)
        tmp = path + ".tmp"
        with open(tmp, "wb") as out:
            out.write(("X-Envelope-From: %s\r\n" % envelope.mail_from).encode())
            out.write(("X-Envelope-To: %s\r\n" % ",".join(envelope.rcpt_tos)).encode())
            out.write(envelope.original_content or envelope.content)
        os.rename(tmp, path)
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    maildir = sys.argv[1]
    os.makedirs(maildir, exist_ok=True)
    port = free_port()
    controller = Controller(Sink(maildir), hostname="127.0.0.1", port=port)
    controller.start()
    print("PORT %d" % port, flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
