#!/usr/bin/env python3
"""SMTP submission servers for Tests/NotifyTests/TransportSMTPTests.swift (aiosmtpd).

Usage: smtp_peer.py CERT_DIR OUT_DIR

Listens on free ports of 127.0.0.1 and prints them as one JSON line on stdout:
  starttls        STARTTLS required, then AUTH (PLAIN or LOGIN) required
  login           the same, offering AUTH LOGIN only
  implicit        TLS from the first byte (port 465 style), AUTH required
  plain           no TLS, no AUTH (smtp_tls = none)
  wrong_starttls  like starttls, with a certificate for wrong.example only
  wrong_implicit  like implicit, with a certificate for wrong.example only
The one account is parley / s3cret. RCPT later@... is answered 451, nobody@... 550.
Each mail taken is written to OUT_DIR/mail-N.json (envelope, message, TLS, AUTH
mechanism); each AUTH attempt appends a line to OUT_DIR/auth.log.
It exits when its stdin closes (the test ended) or after 300 s.
"""
import asyncio
import json
import os
import ssl
import sys
import threading

try:
    from aiosmtpd.smtp import SMTP, AuthResult
except ImportError:
    sys.stderr.write("aiosmtpd is not installed: python3 -m pip install aiosmtpd (Tests/setup.sh installs it)\n")
    sys.exit(3)

USERS = {b"parley": b"s3cret"}


class Handler:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("later@"):
            return "451 4.3.0 mailbox busy, try again later"
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "message": envelope.original_content.decode("utf-8", "replace"),
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "mechanism": getattr(session, "parley_mechanism", None),
        }
        path = os.path.join(self.out_dir, "mail-%d.json" % self.count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 queued as %d" % self.count


def authenticator(out_dir):
    def check(server, session, envelope, mechanism, auth_data):
        ok = USERS.get(auth_data.login) == auth_data.password
        session.parley_mechanism = mechanism
        with open(os.path.join(out_dir, "auth.log"), "a") as f:
            f.write("%s %s %s\n" % (mechanism, auth_data.login.decode(), "ok" if ok else "refused"))
        return AuthResult(success=ok, handled=False)
    return check


def context(cert_dir, name):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(cert_dir, name + ".pem"), os.path.join(cert_dir, name + ".key"))
    return ctx


async def main(cert_dir, out_dir):
    loop = asyncio.get_running_loop()
    handler = Handler(out_dir)
    auth = authenticator(out_dir)
    good, wrong = context(cert_dir, "server"), context(cert_dir, "wrong")

    def starttls(ctx, **extra):
        return lambda: SMTP(handler, hostname="smtp.test", tls_context=ctx, require_starttls=True,
                            authenticator=auth, auth_required=True, auth_require_tls=True, **extra)

    def implicit():
        # The connection is TLS from the start; aiosmtpd's auth_require_tls looks for STARTTLS only.
        return lambda: SMTP(handler, hostname="smtp.test", authenticator=auth, auth_required=True, auth_require_tls=False)

    listeners = {
        "starttls": (starttls(good), None),
        "login": (starttls(good, auth_exclude_mechanism=["PLAIN"]), None),
        "implicit": (implicit(), good),
        "plain": (lambda: SMTP(handler, hostname="smtp.test"), None),
        "wrong_starttls": (starttls(wrong), None),
        "wrong_implicit": (implicit(), wrong),
    }
    ports = {}
    for name, (factory, tls) in listeners.items():
        server = await loop.create_server(factory, host="127.0.0.1", port=0, ssl=tls)
        ports[name] = server.sockets[0].getsockname()[1]
    print(json.dumps(ports), flush=True)
    await asyncio.sleep(300)


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    asyncio.run(main(sys.argv[1], sys.argv[2]))
