"""The command line imports asyncio without ssl, and TLS through asyncio still behaves as always."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TLS_AGAINST_A_PLAIN_SERVER = """
{start}
import asyncio, sys
async def main():
    async def not_tls(reader, writer):
        writer.write(b"this is not TLS\\r\\n" * 64)
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(not_tls, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    before = "_ssl" in sys.modules
    try:
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=True), 10)
    except Exception as exc:
        print(before, type(exc).__module__, type(exc).__name__)
    server.close()
asyncio.run(main())
"""


def _run(start: str) -> str:
    proc = subprocess.run([sys.executable, "-c", TLS_AGAINST_A_PLAIN_SERVER.format(start=start)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_tls_through_asyncio_fails_the_same_way_with_ssl_imported_late() -> None:
    plain = _run("")
    late = _run("import noetl.cli")
    assert plain == "True ssl SSLError"
    assert late == "False ssl SSLError"  # ssl was not imported until the connection needed it


def test_code_that_imports_ssl_itself_gets_the_real_module() -> None:
    code = ("import sys, noetl.cli, asyncio.sslproto\n"
            "assert '_ssl' not in sys.modules\n"
            "import ssl\n"
            "ssl.create_default_context()\n"
            "assert asyncio.sslproto.ssl.SSLContext is ssl.SSLContext\n"
            "assert asyncio.sslproto.SSLAgainErrors == (ssl.SSLWantReadError, ssl.SSLSyscallError)\n"
            "assert asyncio.sslproto.ssl is ssl\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


TLS_ROUND_TRIP = """
import noetl.cli
import asyncio, sys
async def main():
    import ssl  # the server's context, as a user's code or a library would make it
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain({cert!r}, {key!r})
    async def echo(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_side)
    port = server.sockets[0].getsockname()[1]
    client_side = ssl.create_default_context(cafile={cert!r})
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_side, server_hostname="localhost")
    writer.write(b"hello over tls\\n")
    print((await reader.readline()).decode().strip())
    writer.close()
    server.close()
asyncio.run(main())
"""


def test_a_tls_round_trip_through_asyncio(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    proc = subprocess.run([sys.executable, "-c", TLS_ROUND_TRIP.format(cert=str(cert), key=str(key))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello over tls"
