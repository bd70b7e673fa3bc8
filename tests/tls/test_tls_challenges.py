"""HTTP-01: only tokens of pending orders are answered, and only for their own domain."""

from __future__ import annotations

from hotswap.tls.challenges import PendingChallenges, challenge_response, challenge_token

TOKEN = "OHye15S7IuWbHLJKeGzla1mY8KbgHGUdIj01XzvrY40"
PATH = f"/.well-known/acme-challenge/{TOKEN}"


def pending() -> PendingChallenges:
    table = PendingChallenges()
    table.add("App.Example.com", TOKEN, f"{TOKEN}.thumbprint")
    return table


def test_a_pending_token_is_answered_with_its_key_authorization() -> None:
    expected = f"{TOKEN}.thumbprint".encode()
    assert challenge_response(pending(), "GET", "app.example.com", PATH) == expected
    assert challenge_response(pending(), b"GET", "APP.example.com:80", PATH.encode()) == expected
    assert challenge_response(pending(), "HEAD", "app.example.com.", PATH + "?x=1") == expected


def test_anything_else_is_left_to_the_proxy() -> None:
    table = pending()
    assert challenge_response(table, "GET", "other.example.com", PATH) is None  # not its domain
    assert challenge_response(table, "POST", "app.example.com", PATH) is None
    assert (
        challenge_response(table, "GET", "app.example.com", "/.well-known/acme-challenge/x") is None
    )
    assert challenge_response(table, "GET", "app.example.com", "/") is None
    table.remove(TOKEN)
    assert challenge_response(table, "GET", "app.example.com", PATH) is None
    assert len(table) == 0


def test_only_base64url_tokens_are_tokens() -> None:
    assert challenge_token(PATH) == TOKEN
    assert challenge_token("/.well-known/acme-challenge/../../etc/passwd") is None
    assert challenge_token("/.well-known/acme-challenge/") is None
    assert challenge_token("/well-known/acme-challenge/abc") is None
