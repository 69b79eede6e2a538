"""Session tokens: issued at random, stored as hashes, checked per role."""

from __future__ import annotations

import pytest

from livetranslate.contracts.subjects import validate_session_id
from livetranslate.edge.access import (
    AccessDeniedError,
    AccessRecord,
    Role,
    check,
    issue,
    new_session_id,
    token_digest,
)


@pytest.fixture
def issued() -> tuple[AccessRecord, str, str]:
    record, tokens = issue("s1")
    return record, tokens.publish_token, tokens.view_token


def test_a_new_session_id_is_one_subject_token_and_differs_each_time() -> None:
    ids = {new_session_id() for _ in range(100)}

    assert len(ids) == 100
    assert all(validate_session_id(session_id) for session_id in ids)


def test_the_record_keeps_digests_and_never_the_tokens() -> None:
    record, tokens = issue("s1")
    stored = record.model_dump_json()

    assert tokens.publish_token != tokens.view_token
    assert tokens.publish_token not in stored
    assert tokens.view_token not in stored
    assert record.publish_sha256 == token_digest(tokens.publish_token)
    assert record.view_sha256 == token_digest(tokens.view_token)


def test_the_view_token_lets_its_holder_view(issued: tuple[AccessRecord, str, str]) -> None:
    record, _, view = issued

    check("s1", record, view, Role.VIEW)


def test_the_publish_token_lets_its_holder_publish_and_view(
    issued: tuple[AccessRecord, str, str],
) -> None:
    record, publish, _ = issued

    check("s1", record, publish, Role.PUBLISH)
    check("s1", record, publish, Role.VIEW)


def test_the_view_token_does_not_let_its_holder_publish(
    issued: tuple[AccessRecord, str, str],
) -> None:
    record, _, view = issued

    with pytest.raises(AccessDeniedError, match="not valid to publish") as denied:
        check("s1", record, view, Role.PUBLISH)
    assert not denied.value.missing


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("token", [None, ""])
def test_no_token_is_refused_as_missing(
    issued: tuple[AccessRecord, str, str], role: Role, token: str | None
) -> None:
    with pytest.raises(AccessDeniedError, match=f"needs its {role} token") as denied:
        check("s1", issued[0], token, role)
    assert denied.value.missing


@pytest.mark.parametrize("role", list(Role))
def test_a_wrong_token_is_refused(issued: tuple[AccessRecord, str, str], role: Role) -> None:
    with pytest.raises(AccessDeniedError, match="not valid") as denied:
        check("s1", issued[0], "guess", role)
    assert not denied.value.missing


def test_another_sessions_token_is_refused(issued: tuple[AccessRecord, str, str]) -> None:
    _, tokens = issue("s2")

    for token in (tokens.publish_token, tokens.view_token):
        with pytest.raises(AccessDeniedError):
            check("s1", issued[0], token, Role.VIEW)


def test_a_session_without_a_record_is_viewable_only_when_open() -> None:
    check("s1", None, None, Role.VIEW, open_session=True)

    with pytest.raises(AccessDeniedError):
        check("s1", None, None, Role.VIEW, open_session=False)


def test_a_session_without_a_record_takes_no_audio_even_when_open() -> None:
    with pytest.raises(AccessDeniedError):
        check("s1", None, "anything", Role.PUBLISH, open_session=True)


def test_a_refusal_reads_the_same_whether_or_not_the_session_exists(
    issued: tuple[AccessRecord, str, str],
) -> None:
    reasons = []
    for record in (issued[0], None):
        with pytest.raises(AccessDeniedError) as denied:
            check("s1", record, "guess", Role.VIEW)
        reasons.append(denied.value.reason)

    assert reasons[0] == reasons[1]
