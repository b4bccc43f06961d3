"""The newOrder message: ``replaces`` (ARI) is sent when given and left out otherwise."""

from __future__ import annotations

from acme import messages

from acme_store.orders import _NewOrder


def test_replaces_is_sent_only_when_given() -> None:
    """acme's NewOrder lacks the field; ours carries it, and omits it when None."""
    name = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="a.test")
    with_id = _NewOrder(identifiers=[name], replaces="aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    without = _NewOrder(identifiers=[name], replaces=None)
    assert with_id.to_partial_json()["replaces"] == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    assert "replaces" not in without.to_partial_json()
