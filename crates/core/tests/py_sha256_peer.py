"""Test peer speaking the CPython 3.12+ handshake ({digest}-prefixed challenges and
replies), since the local python3 is 3.11 and only speaks the legacy HMAC-MD5 one.

    py_sha256_peer.py listen  KEY [--challenge DIGEST] [--reply DIGEST]
    py_sha256_peer.py connect KEY PORT [--challenge DIGEST] [--reply DIGEST]

listen prints the port, accepts one connection and runs deliver-then-answer;
connect runs answer-then-deliver. Then it echoes one message back prefixed with
b"py:". --reply forces the digest of our reply (default: the challenge's own).
Exit status 3 with "AUTHFAIL ..." on stdout when authentication fails.
"""
import hmac
import os
import socket
import sys
from multiprocessing.connection import AuthenticationError, Connection

DIGESTS = ("md5", "sha256", "sha384", "sha3_256", "sha3_384")


def digest_of(msg):
    """(digest name or None for legacy raw HMAC-MD5, payload)."""
    if len(msg) in (16, 20):
        return None, msg
    if msg.startswith(b"{"):
        end = msg.find(b"}", 1, 10)
        name = msg[1:end].decode("ascii", "replace") if end > 0 else ""
        if name in DIGESTS:
            return name, msg[end + 1:]
    raise AuthenticationError("no usable digest prefix: %r" % msg)


def deliver(conn, key, digest):
    challenge = b"{" + digest.encode() + b"}" + os.urandom(40)
    conn.send_bytes(b"#CHALLENGE#" + challenge)
    name, mac = digest_of(conn.recv_bytes(256))
    want = hmac.new(key, challenge, name or "md5").digest()
    if not hmac.compare_digest(want, mac):
        conn.send_bytes(b"#FAILURE#")
        raise AuthenticationError("digest received was wrong")
    conn.send_bytes(b"#WELCOME#")


def answer(conn, key, forced):
    msg = conn.recv_bytes(256)
    if not msg.startswith(b"#CHALLENGE#"):
        raise AuthenticationError("expected a challenge: %r" % msg)
    msg = msg[len(b"#CHALLENGE#"):]
    name = forced or digest_of(msg)[0]
    if name is None:
        reply = hmac.new(key, msg, "md5").digest()
    else:
        reply = b"{" + name.encode() + b"}" + hmac.new(key, msg, name).digest()
    conn.send_bytes(reply)
    if conn.recv_bytes(256) != b"#WELCOME#":
        raise AuthenticationError("digest sent was rejected")


def main(argv):
    mode, key = argv[0], argv[1].encode()
    opts = dict(zip(argv[2::2], argv[3::2])) if mode == "listen" else dict(zip(argv[3::2], argv[4::2]))
    challenge = opts.get("--challenge", "sha256")
    forced = opts.get("--reply")
    if mode == "listen":
        srv = socket.socket(socket.AF_INET)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        print(srv.getsockname()[1], flush=True)
        sock, _ = srv.accept()
        srv.close()
    else:
        sock = socket.create_connection(("127.0.0.1", int(argv[2])))
    conn = Connection(sock.detach())
    try:
        if mode == "listen":
            deliver(conn, key, challenge)
            answer(conn, key, forced)
        else:
            answer(conn, key, forced)
            deliver(conn, key, challenge)
    except AuthenticationError as e:
        print("AUTHFAIL", e, flush=True)
        return 3
    conn.send_bytes(b"py:" + conn.recv_bytes())
    print("OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
