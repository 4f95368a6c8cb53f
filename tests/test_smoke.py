"""The cockpit answers: the login page renders in Chinese, and a signed-in role reaches the list."""

import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_login_page_is_chinese(client):
    response = client.get("/login/")
    assert response.status_code == 200
    assert 'lang="zh-hans"' in response.content.decode()


def test_signed_in_reviewer_sees_order_list(client, people):
    client.login(username="reviewer", password=PASSWORD)
    response = client.get("/orders/")
    assert response.status_code == 200
