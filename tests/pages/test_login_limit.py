"""Brute force on the sign-in pages (issue 19, finding 5): `/login/` and `/admin/login/` took
unlimited attempts. After LOGIN_FAILURE_LIMIT failures of one username from one address, that
pair is refused, with the right password too, until LOGIN_LOCKOUT_MINUTES have passed; the
attacker's usual tricks to start a fresh count are tried."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from core.choices import Role
from orchestrator.models import ApiToken, Membership

pytestmark = pytest.mark.django_db

PASSWORD = "right-horse-battery-9"
LOGIN = "/login/"
ADMIN_LOGIN = "/admin/login/"
LOCKED_TEXT = "Too many failed sign-ins"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # Every attempt hashes a password; the default hasher takes most of a second here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(org):
    user = get_user_model().objects.create_user("alice", password=PASSWORD, is_staff=True)
    Membership.objects.create(user=user, organization=org, role=Role.ADMIN, is_default=True)
    return user


def attempt(client: Client, username: str, password: str, url: str = LOGIN, **extra):
    return client.post(url, {"username": username, "password": password}, **extra)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail(client: Client, times: int, username: str = "alice", url: str = LOGIN, **extra) -> None:
    for _ in range(times):
        attempt(client, username, "wrong-guess", url, **extra)


def assert_locked_out(response) -> None:
    assert response.status_code == 429
    assert LOCKED_TEXT in response.content.decode()
    assert "15 minutes" in response.content.decode()


def test_a_correct_password_signs_in(alice):
    client = Client()
    assert attempt(client, "alice", PASSWORD).status_code == 302 and signed_in(client)


def test_after_five_failures_the_right_password_is_refused_with_a_message(alice):
    client = Client()
    fail(client, 4)
    assert_locked_out(attempt(client, "alice", "wrong-guess"))
    response = attempt(client, "alice", PASSWORD)
    assert_locked_out(response)
    assert not signed_in(client)


def test_four_failures_do_not_lock_and_a_success_clears_the_count(alice):
    client = Client()
    fail(client, 4)
    assert attempt(client, "alice", PASSWORD).status_code == 302
    client.logout()
    fail(client, 4)
    assert attempt(client, "alice", PASSWORD).status_code == 302


def test_another_user_and_another_address_are_not_locked(alice):
    bob = get_user_model().objects.create_user("bob", password=PASSWORD)
    fail(Client(), 5)
    assert attempt(Client(), bob.username, PASSWORD).status_code == 302
    elsewhere = Client(REMOTE_ADDR="203.0.113.9")
    assert attempt(elsewhere, "alice", PASSWORD).status_code == 302


def test_the_lock_ends_after_the_lockout_time(alice):
    client = Client()
    fail(client, 5)
    assert_locked_out(attempt(client, "alice", PASSWORD))
    last = AccessAttempt.objects.get().attempt_time
    AccessAttempt.objects.update(attempt_time=last - timedelta(minutes=16))
    assert attempt(client, "alice", PASSWORD).status_code == 302 and signed_in(client)


def test_the_admin_sign_in_is_limited_too(alice):
    client = Client()
    fail(client, 5, url=ADMIN_LOGIN)
    assert_locked_out(attempt(client, "alice", PASSWORD, ADMIN_LOGIN))
    assert not signed_in(client)


def test_failures_on_either_page_count_together(alice):
    client = Client()
    fail(client, 3, url=ADMIN_LOGIN)
    fail(client, 2, url=LOGIN)
    assert_locked_out(attempt(client, "alice", PASSWORD))
    assert_locked_out(attempt(client, "alice", PASSWORD, ADMIN_LOGIN))


@pytest.mark.parametrize(
    "variants",
    [
        ["Alice", "ALICE", "aLiCe", "Alice", "alicE"],
        [" alice", "alice ", "\talice", " Alice ", "alice\n"],
        ["\uff41\uff4c\uff49\uff43\uff45", "\uff21LICE", "Alice", " ALICE", "alice"],
    ],
    ids=["case", "whitespace", "unicode-forms"],
)
def test_changing_how_the_username_is_written_does_not_start_a_fresh_count(alice, variants):
    client = Client()
    for username in variants:
        attempt(client, username, "wrong-guess")
    assert_locked_out(attempt(client, "alice", PASSWORD))


def test_a_spoofed_x_forwarded_for_does_not_reset_the_count(alice):
    client = Client()
    for index in range(5):
        attempt(client, "alice", "wrong-guess", HTTP_X_FORWARDED_FOR=f"198.51.100.{index}")
    assert_locked_out(attempt(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.77"))
    assert_locked_out(attempt(client, "alice", PASSWORD))


def test_behind_a_proxy_only_the_address_the_proxy_appended_counts(alice, settings):
    """nginx appends the address it saw to X-Forwarded-For; what the client wrote before it
    changes nothing, and another real client behind the same proxy is not locked."""
    settings.BEHIND_PROXY = True
    proxy = Client(REMOTE_ADDR="127.0.0.1")
    for index in range(5):
        forged = f"10.9.9.{index}, 192.0.2.10"
        attempt(proxy, "alice", "wrong-guess", HTTP_X_FORWARDED_FOR=forged)
    assert_locked_out(
        attempt(proxy, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="10.1.1.1, 192.0.2.10")
    )
    other = Client(REMOTE_ADDR="127.0.0.1")
    response = attempt(other, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert response.status_code == 302 and signed_in(other)


def test_the_limit_and_lockout_time_follow_the_settings(alice, settings):
    settings.AXES_FAILURE_LIMIT = 2
    client = Client()
    fail(client, 1)
    assert attempt(client, "alice", "wrong-guess").status_code == 429


def test_a_locked_out_user_keeps_their_api_token_and_sessions(alice, org):
    """The limit guards password guessing; a token or a session already held is not a guess."""
    _, raw = ApiToken.issue(org, Role.ADMIN, user=alice)
    session = Client()
    session.force_login(alice)
    fail(Client(), 5)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/orchestrations").status_code == 200
    assert session.get("/").status_code == 200
