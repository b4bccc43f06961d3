"""The newOrder message: ``replaces`` (ARI) is sent when given, dropped when the CA refuses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from acme import messages

from acme_store.orders import AcmeClient, _NewOrder


def test_replaces_is_sent_only_when_given() -> None:
    """acme's NewOrder lacks the field; ours carries it, and omits it when None."""
    name = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="a.test")
    with_id = _NewOrder(identifiers=[name], replaces="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    without = _NewOrder(identifiers=[name], replaces=None)
    assert with_id.to_partial_json()["replaces"] == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    assert "replaces" not in without.to_partial_json()


class _RefusingReplaces(AcmeClient):
    """Posts nothing: refuses any order that names a certificate it replaces."""

    def __init__(self, tmp: Path) -> None:
        super().__init__("https://ca.invalid/directory", tmp)
        self.posted: list[str | None] = []

    def _new_order(self, client: Any, order: _NewOrder, csr_pem: bytes) -> Any:
        self.posted.append(order.replaces)
        if order.replaces is not None:
            raise messages.Error.with_code(
                "malformed", detail="replaces: not this account's certificate"
            )
        return "order"


def test_refused_replaces_is_retried_without_it(tmp_path: Path) -> None:
    """A CA refusing ``replaces`` gets the same order again without it, once."""
    name = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="a.test")
    client = _RefusingReplaces(tmp_path)
    order = _NewOrder(identifiers=[name], replaces="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    assert client._place_order(None, order, b"") == "order"  # type: ignore[arg-type]
    assert client.posted == ["aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE", None]


def test_refused_order_without_replaces_is_not_retried(tmp_path: Path) -> None:
    """An order refused for another reason is not posted twice."""

    class Refusing(_RefusingReplaces):
        def _new_order(self, client: Any, order: _NewOrder, csr_pem: bytes) -> Any:
            self.posted.append(order.replaces)
            raise messages.Error.with_code("rejectedIdentifier")

    name = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="a.test")
    client = Refusing(tmp_path)
    with pytest.raises(messages.Error):
        client._place_order(None, _NewOrder(identifiers=[name]), b"")  # type: ignore[arg-type]
    assert client.posted == [None]
