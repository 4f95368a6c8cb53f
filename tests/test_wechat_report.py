"""The fake WeChat reports delivery (TEMPLATESENDJOBFINISH, signed) to the real callback over HTTP."""

import pytest

from integrations.wechat import services
from integrations.wechat.models import CustomerMessage
from tests.conftest import make_order, wait_for
from tests.logistics_fixtures import bind_customer, fake_wechat, role_groups  # noqa: F401 - fixtures
from workflows import notifications

pytestmark = pytest.mark.usefixtures("transactional_db", "role_groups")


def test_delivery_reports_arrive_signed(fake_wechat, live_server):
    fake_wechat.report_url = f"{live_server.url}/integrations/wechat/callback/"
    order = make_order(status="shipped")
    openid = bind_customer(order)
    fake_wechat.set_follower(openid, "blocked")
    message = notifications.customer_push_order_status(order=order, event_key="shipped")
    assert services.customer_message_send(message_id=message.pk) == "sent"
    wait_for(lambda: CustomerMessage.objects.get(pk=message.pk).delivery_status, timeout=10, message="the delivery report")
    assert CustomerMessage.objects.get(pk=message.pk).delivery_status == "failed:user block"
    assert fake_wechat.reports[-1][1] == 200
