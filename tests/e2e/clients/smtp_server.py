"""A real SMTP server for the notifications mail tests (tests/e2e/notifications_mail.rs).

Runs aiosmtpd on 127.0.0.1, a port the OS picks, and prints one JSON line per event on
stdout: {"event": "listening", "port": N} first, then "connect" for each connection,
"auth" (the login name and whether it matched; never the password), "data" for every
message offered (with the reply code it got) and "message" for each one accepted. The raw
bytes of every message offered are written to DIR/attempt-<n>.eml (named in its events), for
the test to check with a MIME parser.

    smtp_server.py DIR [--reply CODE ...] [--user NAME --password PASSWORD]

--reply gives the answers to the first DATA commands in order (451, 550 ..., or 0: hold the
message without ever answering); every later one is 250. With --user, AUTH (PLAIN or LOGIN) is required, over plain SMTP (a local relay).
"""

import argparse
import asyncio
import json
import os
import sys

from aiosmtpd.smtp import SMTP, AuthResult

REPLIES = {
    451: "451 4.3.0 Temporarily unable to accept, try again later",
    550: "550 5.1.1 Mailbox unavailable",
}


def emit(**event):
    print(json.dumps(event), flush=True)


class Handler:
    def __init__(self, directory, replies):
        self.directory = directory
        self.replies = list(replies)
        self.offered = 0

    async def handle_DATA(self, server, session, envelope):
        code = self.replies.pop(0) if self.replies else 250
        self.offered += 1
        path = os.path.join(self.directory, f"attempt-{self.offered}.eml")
        with open(path, "wb") as f:
            f.write(envelope.original_content)
        emit(event="data", code=code, file=path, mail_from=envelope.mail_from,
             rcpt_tos=envelope.rcpt_tos)
        if code == 0:
            # hold: never answer (the sender dies meanwhile)
            await asyncio.sleep(3600)
        if code != 250:
            return REPLIES.get(code, f"{code} refused")
        emit(event="message", file=path, mail_from=envelope.mail_from, rcpt_tos=envelope.rcpt_tos)
        return "250 2.0.0 OK queued"


class Counting(SMTP):
    def connection_made(self, transport):
        emit(event="connect")
        super().connection_made(transport)


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode(errors="replace")
        ok = login == user and auth_data.password.decode(errors="replace") == password
        emit(event="auth", mechanism=mechanism, login=login, ok=ok)
        return AuthResult(success=ok)

    return check


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--reply", type=int, action="append", default=[])
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    handler = Handler(args.directory, args.reply)

    def factory():
        if args.user:
            return Counting(
                handler,
                authenticator=authenticator(args.user, args.password),
                auth_required=True,
                auth_require_tls=False,
            )
        return Counting(handler)

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    emit(event="listening", port=server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
