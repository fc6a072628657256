"""Hangs: a server that accepts and never answers, or trickles, ends in one clear error, not a hang.

The timeouts are made small through the documented settings (``WEIGHTCACHE_HUB_TIMEOUT``,
``WEIGHTCACHE_HUB_DEADLINE``, ``URLSource(timeout=, stall_timeout=)``). Each test waits for the
error itself; the generous join bound only turns a regression into a failure instead of a hang.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from weightcache import (
    HFSource,
    InvalidSourceError,
    SourceError,
    SourceUnreachableError,
    URLSource,
    WeightCache,
)
from weightcache.testing import FakeHub, FileServer
from weightcache.testing._server import BackgroundServer, QuietHandler

#: Long enough never to trip on a loaded machine when the fix works; short enough to end a hang.
HANG_BOUND_SECONDS = 120


class SilentServer:
    """Accepts TCP connections (the kernel's backlog does) and never answers a byte."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def close(self) -> None:
        """Stop accepting."""
        self._socket.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def small_hub_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIGHTCACHE_HUB_TIMEOUT", "0.3")
    monkeypatch.setenv("WEIGHTCACHE_HUB_DEADLINE", "1")


def raised_within_bound(call: Callable[[], object]) -> BaseException:
    """What ``call`` raised, run in a thread so that a hang fails the test instead of stalling it."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HANG_BOUND_SECONDS)
    assert not worker.is_alive(), "still waiting on a server that never answers"
    assert outcome, "no error was raised"
    return outcome[0]


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message
    return message


@pytest.mark.usefixtures("small_hub_timeouts")
def test_resolving_against_a_silent_hub_fails_with_one_line(cache: WeightCache, silent: SilentServer) -> None:
    error = raised_within_bound(lambda: cache.ensure(HFSource("acme/tiny", endpoint=silent.url)))
    assert isinstance(error, SourceUnreachableError)
    assert "WEIGHTCACHE_HUB" in one_line(error)


@pytest.mark.usefixtures("small_hub_timeouts")
def test_listing_against_a_silent_hub_fails_with_one_line(cache: WeightCache, silent: SilentServer) -> None:
    pinned = HFSource("acme/tiny", revision="a" * 40, endpoint=silent.url)  # no resolve: straight to the tree
    error = raised_within_bound(lambda: cache.ensure(pinned))
    assert isinstance(error, SourceUnreachableError)
    assert "WEIGHTCACHE_HUB" in one_line(error)
    assert cache.list() == []


@pytest.mark.usefixtures("small_hub_timeouts")
def test_the_cli_reports_a_silent_hub_in_one_line(
    store_dir: Path, cli, silent: SilentServer, monkeypatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", silent.url)
    result = cli("ensure", "hf://acme/tiny", "--store", store_dir)
    assert result.exit_code == 1 and "WEIGHTCACHE_HUB" in result.output and "Traceback" not in result.output


def test_hub_settings_come_from_arguments_too(cache: WeightCache, silent: SilentServer) -> None:
    source = HFSource("acme/tiny", endpoint=silent.url, timeout=0.3, deadline=1)
    assert isinstance(raised_within_bound(lambda: cache.ensure(source)), SourceUnreachableError)


def test_a_bad_hub_setting_is_one_sentence(cache: WeightCache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIGHTCACHE_HUB_DEADLINE", "soon")
    with pytest.raises(InvalidSourceError, match="WEIGHTCACHE_HUB_DEADLINE"):
        cache.ensure(HFSource("acme/tiny", endpoint="http://127.0.0.1:9"))


def test_hub_timeouts_leave_other_requests_alone(cache: WeightCache, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.utils import get_session

    with FakeHub() as hub:
        hub.add_repo("acme/tiny", {"config.json": b"{}"})
        cache.ensure(HFSource("acme/tiny", endpoint=hub.url, timeout=0.3, deadline=1))
        response = get_session().get(f"{hub.url}/api/models/acme/tiny", timeout=None)
    assert response.request.extensions["timeout"]["read"] is None  # the application's choice stands


def test_a_silent_url_server_fails_with_one_line(cache: WeightCache, silent: SilentServer) -> None:
    source = URLSource(f"{silent.url}/model.bin", timeout=0.3, retries=1)
    error = raised_within_bound(lambda: cache.ensure(source))
    assert isinstance(error, SourceUnreachableError) and "timed out" in one_line(error)


@pytest.mark.parametrize("ranges", [True, False])
def test_a_trickling_url_download_is_abandoned(cache: WeightCache, ranges: bool) -> None:
    with FileServer(ranges=ranges) as server:
        url = server.add("/model.bin", b"w" * 200_000)
        server.trickle("/model.bin", interval=0.02, times=10)
        source = URLSource(url, timeout=5, stall_timeout=0.5, retries=1)
        error = raised_within_bound(lambda: cache.ensure(source))
        assert isinstance(error, SourceUnreachableError) and "stalled" in one_line(error)
        assert cache.list() == []
        server.add("/model.bin", b"w" * 200_000)  # the server is well again (faults cleared)
        assert cache.ensure(source).file().read_bytes() == b"w" * 200_000


class _Owner:
    """What a scripted server answers every request with."""

    def __init__(self, answer: Callable[[QuietHandler], None]) -> None:
        self.answer = answer


class _Scripted(QuietHandler):
    def do_GET(self) -> None:
        """Answer with the owner's script."""
        self.owner.answer(self)

    do_HEAD = do_GET


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[QuietHandler], None]], str]]:
    servers: list[BackgroundServer] = []

    def start(answer: Callable[[QuietHandler], None]) -> str:
        servers.append(BackgroundServer(_Scripted, _Owner(answer)))
        return servers[-1].url

    yield start
    for server in servers:
        server.close()


def test_the_test_servers_send_a_body_without_waiting_for_the_clients_ack(scripted) -> None:
    # With Nagle on, a keep-alive response's body waited ~40 ms for the delayed ACK of its headers.
    def answer(handler: QuietHandler) -> None:
        nodelay = handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        handler.send_simple(200, body=b"%d" % bool(nodelay))

    with urllib.request.urlopen(scripted(answer)) as response:
        assert response.read() == b"1"


def test_a_hub_that_redirects_forever_is_one_sentence(cache: WeightCache, scripted) -> None:
    url = scripted(lambda handler: handler.send_simple(302, {"Location": handler.path}))
    with pytest.raises(SourceError, match="redirected too many times") as caught:
        cache.ensure(HFSource("acme/tiny", endpoint=url))
    one_line(caught.value)


def test_a_captive_portal_answering_html_is_one_sentence(
    cache: WeightCache, scripted, store_dir, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = b"<html><body>Please log in to the hotel Wi-Fi</body></html>"
    url = scripted(lambda handler: handler.send_simple(200, {"Content-Type": "text/html"}, page))
    for source in (
        HFSource("acme/tiny", endpoint=url),
        HFSource("acme/tiny", revision="b" * 40, endpoint=url),
    ):
        with pytest.raises(SourceError, match="captive portal") as caught:
            cache.ensure(source)
        one_line(caught.value)
    monkeypatch.setenv("HF_ENDPOINT", url)
    result = cli("ensure", "hf://acme/tiny", "--store", store_dir)
    assert result.exit_code == 1 and "captive portal" in result.output


def _raw(handler: QuietHandler, status: str, headers: dict[str, bytes], body: bytes) -> None:
    lines = [
        f"HTTP/1.1 {status}".encode(),
        *(name.encode() + b": " + value for name, value in headers.items()),
    ]
    handler.wfile.write(b"\r\n".join([*lines, b"Content-Length: %d" % len(body), b"", b""]) + body)


@pytest.mark.parametrize("digits", ["²", "١٢"])
def test_non_ascii_digits_in_content_range_are_ignored(cache: WeightCache, scripted, digits: str) -> None:
    def answer(handler: QuietHandler) -> None:
        if handler.headers.get("Range"):
            _raw(handler, "206 Partial Content", {"Content-Range": f"bytes 0-0/{digits}".encode()}, b"w")
        else:
            _raw(handler, "200 OK", {}, b"weights")

    url = scripted(answer)
    assert cache.ensure(f"{url}/model.bin").file().read_bytes() == b"weights"


@pytest.mark.parametrize("digits", ["²", "١٢"])
def test_non_ascii_digits_in_retry_after_are_ignored(cache: WeightCache, digits: str) -> None:
    with FileServer() as server:
        url = server.add("/model.bin", b"weights")
        server.fail("/model.bin", 503, retry_after=digits)  # type: ignore[arg-type]
        assert cache.ensure(URLSource(url, retries=2)).file().read_bytes() == b"weights"


def test_a_portal_page_instead_of_a_hub_file_is_one_sentence(cache: WeightCache, scripted) -> None:
    listing = json.dumps([{"type": "file", "oid": "0" * 40, "size": 5, "path": "config.json"}]).encode()

    def answer(handler: QuietHandler) -> None:
        if "/tree/" in handler.path:
            handler.send_simple(200, {"Content-Type": "application/json"}, listing)
        else:
            handler.send_simple(200, {"Content-Type": "text/html"}, b"<html>log in</html>")

    url = scripted(answer)
    with pytest.raises(SourceError, match="captive portal") as caught:
        cache.ensure(HFSource("acme/tiny", revision="c" * 40, endpoint=url))
    one_line(caught.value)
    assert cache.list() == []
