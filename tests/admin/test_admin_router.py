"""The admin API's routing, token check and JSON helpers, without sockets."""

from __future__ import annotations

import json

import pytest

from hotswap.admin.router import (
    HttpError,
    Router,
    check_token,
    error_bytes,
    json_bytes,
    parse_json_object,
)


def make_router() -> Router[str]:
    router: Router[str] = Router()
    router.add("GET", "/v1/status", "status")
    router.add("POST", "/v1/deploy/{domain}", "deploy")
    router.add("GET", "/metrics", "metrics")
    return router


def test_a_template_segment_captures_one_path_segment_and_the_query_is_ignored() -> None:
    match = make_router().resolve("POST", "/v1/deploy/app.example.com?x=1")
    assert match.handler == "deploy"
    assert match.params == {"domain": "app.example.com"}


def test_percent_encoded_segments_are_decoded() -> None:
    assert make_router().resolve("POST", "/v1/deploy/a%2Eb.com").params == {"domain": "a.b.com"}


def test_a_trailing_slash_matches_the_same_route() -> None:
    assert make_router().resolve("GET", "/v1/status/").handler == "status"


def test_an_unknown_path_is_404_with_the_path_in_the_message() -> None:
    with pytest.raises(HttpError) as caught:
        make_router().resolve("GET", "/v2/nothing")
    assert caught.value.status == 404
    assert "/v2/nothing" in caught.value.message


def test_a_known_path_with_another_method_is_405_with_allow() -> None:
    with pytest.raises(HttpError) as caught:
        make_router().resolve("GET", "/v1/deploy/app.example.com")
    assert caught.value.status == 405
    assert ("Allow", "POST") in caught.value.headers


def test_an_extra_segment_does_not_match() -> None:
    with pytest.raises(HttpError) as caught:
        make_router().resolve("POST", "/v1/deploy/a.com/more")
    assert caught.value.status == 404


def test_no_token_configured_lets_every_request_through() -> None:
    check_token("", None)
    check_token("", "Bearer anything")


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer wrong", "Basic s3cret", "Bearer s3cret2", "s3cret"]
)
def test_a_missing_or_wrong_token_is_401_with_a_bearer_challenge(header: str | None) -> None:
    with pytest.raises(HttpError) as caught:
        check_token("s3cret", header)
    assert caught.value.status == 401
    assert ("WWW-Authenticate", 'Bearer realm="hotswap"') in caught.value.headers


@pytest.mark.parametrize("header", ["Bearer s3cret", "bearer s3cret", "  Bearer   s3cret "])
def test_the_right_token_passes_whatever_the_scheme_case_and_spacing(header: str) -> None:
    check_token("s3cret", header)


def test_a_non_ascii_authorization_header_is_refused_not_crashing() -> None:
    with pytest.raises(HttpError):
        check_token("s3cret", "Bearer s3crét")


def test_an_empty_body_is_an_empty_object() -> None:
    assert parse_json_object(b"") == {}
    assert parse_json_object(b"  \n") == {}


def test_a_json_object_body_is_parsed() -> None:
    assert parse_json_object(b'{"image": "app:2"}') == {"image": "app:2"}


@pytest.mark.parametrize("body", [b"{", b"[1]", b'"x"', b"\xff"])
def test_a_body_that_is_not_a_json_object_is_400(body: bytes) -> None:
    with pytest.raises(HttpError) as caught:
        parse_json_object(body)
    assert caught.value.status == 400


def test_json_lines_end_with_a_newline_and_keep_unicode() -> None:
    line = json_bytes({"event": "done", "message": "déployé"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"event": "done", "message": "déployé"}
    assert json.loads(error_bytes("boom", problems=["a"])) == {"error": "boom", "problems": ["a"]}
