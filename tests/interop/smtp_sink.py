"""An SMTP sink on 127.0.0.1 (aiosmtpd, Debian's python3-aiosmtpd): every
message it is handed becomes a file in OUTDIR, as received (written aside,
then renamed). Writes the port it listens on to PORTFILE, then serves until
killed.

usage: smtp_sink.py PORTFILE OUTDIR
"""
import os
import socket
import sys
import time

from aiosmtpd.controller import Controller

portfile, outdir = sys.argv[1:3]


class Sink:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        name = os.path.join(outdir, f"{Sink.count:04d}")
        with open(name + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(name + ".rcpt", "w") as f:
            f.write("\n".join(envelope.rcpt_tos))
        os.rename(name + ".tmp", name + ".eml")
        return "250 OK"


# A free port: bound by the kernel, released, then taken by the sink.
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
controller = Controller(Sink(), hostname="127.0.0.1", port=port)
controller.start()
with open(portfile + ".tmp", "w") as f:
    f.write(str(port))
os.rename(portfile + ".tmp", portfile)
while True:
    time.sleep(3600)
