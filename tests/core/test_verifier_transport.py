"""The log sends its tokens to the verifier only over https, plain http to a loopback address,
or plain http where the operator declared the network private."""

from __future__ import annotations

import pytest
from decision_log.verifier_client import require_private_transport


@pytest.mark.parametrize(
    "url",
    [
        "https://verifier.example",
        "http://127.0.0.1:8001",
        "http://localhost:8001",
        "http://[::1]:8001",
    ],
)
def test_https_and_loopback_are_accepted(url: str) -> None:
    require_private_transport(url)


@pytest.mark.parametrize(
    "url", ["http://verifier:8001", "http://10.0.0.7:8001", "ftp://verifier", "verifier:8001"]
)
def test_plain_http_over_a_network_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="must use https"):
        require_private_transport(url)


def test_plain_http_is_allowed_only_when_declared_private() -> None:
    require_private_transport("http://verifier:8001", plain_http=True)
    with pytest.raises(ValueError):
        require_private_transport("ftp://verifier:8001", plain_http=True)
