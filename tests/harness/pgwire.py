"""A minimal PostgreSQL wire-protocol client over raw sockets, for bad-input tests.

It speaks just enough (startup, SSLRequest, GSSENCRequest, CancelRequest,
cleartext/md5/SCRAM-SHA-256[-PLUS] auth, simple Query) to check exactly what a
server or proxy sends back, byte for byte. Every read is bounded in time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl as ssl_mod
import struct
import time
from dataclasses import dataclass
from typing import Optional

PROTOCOL_3_0 = 3 << 16
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12


class WireError(Exception):
    pass


@dataclass
class Message:
    type: str
    body: bytes

    def error_fields(self) -> dict[str, str]:
        """ErrorResponse/NoticeResponse fields by code letter (S, V, C, M, ...)."""
        return parse_fields(self.body)

    @property
    def sqlstate(self) -> Optional[str]:
        return self.error_fields().get("C") if self.type in ("E", "N") else None

    @property
    def auth_code(self) -> Optional[int]:
        if self.type != "R" or len(self.body) < 4:
            return None
        return struct.unpack("!i", self.body[:4])[0]

    def __repr__(self) -> str:
        if self.type in ("E", "N"):
            return f"Message({self.type} {self.error_fields()})"
        return f"Message({self.type} {self.body[:60]!r})"


def parse_fields(body: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(body) and body[i] != 0:
        code = chr(body[i])
        end = body.index(b"\0", i + 1)
        out[code] = body[i + 1:end].decode("utf-8", "replace")
        i = end + 1
    return out


def startup_message(params: dict[str, str], version: int = PROTOCOL_3_0) -> bytes:
    payload = struct.pack("!i", version)
    for k, v in params.items():
        payload += k.encode() + b"\0" + v.encode() + b"\0"
    payload += b"\0"
    return struct.pack("!i", len(payload) + 4) + payload


def ssl_request() -> bytes:
    return struct.pack("!ii", 8, SSL_REQUEST_CODE)


def gssenc_request() -> bytes:
    return struct.pack("!ii", 8, GSSENC_REQUEST_CODE)


def cancel_request(pid: int, key: int) -> bytes:
    return struct.pack("!iiII", 16, CANCEL_REQUEST_CODE, pid & 0xFFFFFFFF, key & 0xFFFFFFFF)


def tagged(kind: str, payload: bytes = b"") -> bytes:
    return kind.encode() + struct.pack("!i", len(payload) + 4) + payload


def query_message(sql: str) -> bytes:
    return tagged("Q", sql.encode() + b"\0")


def terminate_message() -> bytes:
    return tagged("X")


class RawConn:
    """One socket (optionally TLS-wrapped) with buffered, time-bounded message reads."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout
        self.backend_key: Optional[tuple[int, int]] = None
        self.params: dict[str, str] = {}
        self.peer_cert_der: Optional[bytes] = None

    # ---- plumbing ----
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawConn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fill(self, deadline: float) -> bool:
        """Reads more bytes; False on EOF/reset. Raises TimeoutError past deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data before deadline")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError) as e:
            raise TimeoutError("no data before deadline") from e
        except (ConnectionResetError, BrokenPipeError, ssl_mod.SSLError, OSError):
            return False
        if not data:
            return False
        self.buf += data
        return True

    def read_bytes(self, n: int, timeout: Optional[float] = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            if not self._fill(deadline):
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_message(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next tagged message, or None if the peer closed the connection."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if len(self.buf) >= 5:
                (length,) = struct.unpack("!i", self.buf[1:5])
                if length < 4:
                    raise WireError(f"bad length {length} in message {self.buf[:1]!r}")
                if len(self.buf) >= 1 + length:
                    kind = chr(self.buf[0])
                    body = self.buf[5:1 + length]
                    self.buf = self.buf[1 + length:]
                    return Message(kind, body)
            if not self._fill(deadline):
                if self.buf:
                    raise WireError(f"connection closed inside a message: {self.buf[:40]!r}")
                return None

    def read_until_closed(self, timeout: float = 5.0) -> tuple[bytes, bool]:
        """All bytes until EOF. Returns (bytes, closed); closed is False if the deadline hit."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except TimeoutError:
            data, self.buf = self.buf, b""
            return data, False
        data, self.buf = self.buf, b""
        return data, True

    def messages_until_closed(self, timeout: float = 5.0) -> tuple[list[Message], bool]:
        """Tagged messages until EOF (or the deadline: closed=False)."""
        msgs: list[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return msgs, False
            try:
                m = self.read_message(timeout=remaining)
            except TimeoutError:
                return msgs, False
            if m is None:
                return msgs, True
            msgs.append(m)

    # ---- TLS ----
    def start_tls(self, cafile: Optional[str] = None, server_hostname: str = "localhost",
                  alpn: Optional[list[str]] = None, verify: bool = True) -> None:
        ctx = ssl_mod.create_default_context(cafile=cafile) if verify else \
            ssl_mod.SSLContext(ssl_mod.PROTOCOL_TLS_CLIENT)
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl_mod.CERT_NONE
        if alpn:
            ctx.set_alpn_protocols(alpn)
        if self.buf:
            raise WireError(f"unencrypted bytes buffered before TLS handshake: {self.buf!r}")
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.peer_cert_der = self.sock.getpeercert(binary_form=True)

    def request_ssl(self, **tls_kw) -> bytes:
        """Sends SSLRequest; on 'S' performs the handshake. Returns the one-byte answer."""
        self.send(ssl_request())
        answer = self.read_bytes(1)
        if answer == b"S":
            self.start_tls(**tls_kw)
        return answer

    # ---- startup and authentication ----
    def startup(self, user: str, database: str, password: Optional[str] = None,
                extra: Optional[dict[str, str]] = None, version: int = PROTOCOL_3_0,
                channel_binding: bool = False, timeout: Optional[float] = None
                ) -> list[Message]:
        """Sends a StartupMessage and runs authentication until ReadyForQuery, an
        ErrorResponse, or EOF. Returns every message received (auth requests included)."""
        params = {"user": user, "database": database}
        params.update(extra or {})
        self.send(startup_message(params, version))
        return self.authenticate(user, password, channel_binding=channel_binding,
                                 timeout=timeout)

    def authenticate(self, user: str, password: Optional[str],
                     channel_binding: bool = False, timeout: Optional[float] = None
                     ) -> list[Message]:
        got: list[Message] = []
        scram: Optional[_ScramClient] = None
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = self.read_message(timeout=max(0.01, deadline - time.monotonic()))
            if m is None:
                return got
            got.append(m)
            if m.type == "E" or m.type == "Z":
                if m.type == "Z":
                    return got
                return got
            if m.type == "K":
                self.backend_key = struct.unpack("!iI", m.body[:8])
            elif m.type == "S":
                name, _, rest = m.body.partition(b"\0")
                self.params[name.decode()] = rest.split(b"\0")[0].decode()
            elif m.type == "R":
                code = m.auth_code
                if code == AUTH_OK:
                    continue
                if password is None:
                    raise WireError(f"server asked for auth {code} but no password given")
                if code == AUTH_CLEARTEXT:
                    self.send(tagged("p", password.encode() + b"\0"))
                elif code == AUTH_MD5:
                    salt = m.body[4:8]
                    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    self.send(tagged("p", b"md5" + outer.encode() + b"\0"))
                elif code == AUTH_SASL:
                    mechs = [x.decode() for x in m.body[4:].split(b"\0") if x]
                    use_plus = channel_binding and "SCRAM-SHA-256-PLUS" in mechs
                    if channel_binding and not use_plus:
                        raise WireError(f"channel binding required but offered {mechs}")
                    cb_data = _tls_server_end_point(self.peer_cert_der) if use_plus else None
                    # Like libpq: 'y' if we could bind but the server offered no PLUS.
                    can_bind = self.peer_cert_der is not None
                    scram = _ScramClient(password, cb_data, can_bind and "SCRAM-SHA-256-PLUS" not in mechs)
                    mech = "SCRAM-SHA-256-PLUS" if use_plus else "SCRAM-SHA-256"
                    first = scram.client_first().encode()
                    self.send(tagged("p", mech.encode() + b"\0" + struct.pack("!i", len(first))
                                     + first))
                elif code == AUTH_SASL_CONTINUE:
                    assert scram is not None
                    self.send(tagged("p", scram.client_final(m.body[4:].decode()).encode()))
                elif code == AUTH_SASL_FINAL:
                    assert scram is not None
                    scram.verify_server_final(m.body[4:].decode())
                else:
                    raise WireError(f"unsupported auth request {code}")

    def query(self, sql: str, timeout: Optional[float] = None) -> list[Message]:
        """Sends a simple Query and returns messages up to ReadyForQuery (or EOF)."""
        self.send(query_message(sql))
        return self.read_until_ready(timeout)

    def read_until_ready(self, timeout: Optional[float] = None) -> list[Message]:
        out: list[Message] = []
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = self.read_message(timeout=max(0.01, deadline - time.monotonic()))
            if m is None:
                return out
            out.append(m)
            if m.type == "Z":
                return out


def data_rows(msgs: list[Message]) -> list[list[Optional[str]]]:
    rows = []
    for m in msgs:
        if m.type != "D":
            continue
        (n,) = struct.unpack("!h", m.body[:2])
        i, row = 2, []
        for _ in range(n):
            (ln,) = struct.unpack("!i", m.body[i:i + 4])
            i += 4
            if ln < 0:
                row.append(None)
            else:
                row.append(m.body[i:i + ln].decode())
                i += ln
        rows.append(row)
    return rows


def first_error(msgs: list[Message]) -> Optional[dict[str, str]]:
    for m in msgs:
        if m.type == "E":
            return m.error_fields()
    return None


# ---- SCRAM-SHA-256 (RFC 5802 / 7677) ----

def _tls_server_end_point(cert_der: Optional[bytes]) -> bytes:
    # RFC 5929: hash of the certificate with its signature hash; MD5/SHA-1 -> SHA-256.
    # The harness certificates are signed with SHA-256.
    assert cert_der is not None
    return hashlib.sha256(cert_der).digest()


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


class _ScramClient:
    def __init__(self, password: str, cb_data: Optional[bytes], could_bind: bool):
        self.password = password
        self.cb_data = cb_data
        if cb_data is not None:
            self.gs2 = "p=tls-server-end-point,,"
        else:
            self.gs2 = "y,," if could_bind else "n,,"
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"
        self.server_signature = b""

    def client_first(self) -> str:
        return self.gs2 + self.first_bare

    def client_final(self, server_first: str) -> str:
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        nonce, salt, iters = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        if not nonce.startswith(self.nonce):
            raise WireError("server nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iters)
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        cbind = self.gs2.encode() + (self.cb_data or b"")
        without_proof = f"c={base64.b64encode(cbind).decode()},r={nonce}"
        auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        client_sig = _hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, client_sig))
        server_key = _hmac(salted, b"Server Key")
        self.server_signature = _hmac(server_key, auth_message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}"

    def verify_server_final(self, server_final: str) -> None:
        attrs = dict(kv.split("=", 1) for kv in server_final.split(","))
        if "e" in attrs:
            raise WireError(f"SCRAM server error: {attrs['e']}")
        if base64.b64decode(attrs["v"]) != self.server_signature:
            raise WireError("SCRAM server signature mismatch")


def scram_verifier(password: str, iterations: int = 4096, salt: Optional[bytes] = None) -> str:
    """A PostgreSQL-format SCRAM-SHA-256 verifier for `password`."""
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored = hashlib.sha256(_hmac(salted, b"Client Key")).digest()
    server = _hmac(salted, b"Server Key")
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"


def md5_hash(password: str, user: str) -> str:
    return "md5" + hashlib.md5(password.encode() + user.encode()).hexdigest()
