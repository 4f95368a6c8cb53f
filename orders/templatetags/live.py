"""`{% live_region … %}`: the attributes that make a region of a page live (orders/live.py).

    <div id="board-body" {% live_region %}>                      every order change
    <article id="order-card" {% live_region order %}>            one order
    <section id="lookup-result" {% live_region result.orders %}> the orders shown
    <section id="station" {% live_region order url=… %}>         re-fetched from another address

The region must have an id: static/js/live.js fetches the page (or `url`) again and swaps the
element with the same id.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from django import template
from django.utils.html import format_html

from orders import live

register = template.Library()


@register.simple_tag(takes_context=True)
def live_region(context, watched=None, url: str = "") -> str:
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return ""
    if watched is None:
        watch = live.ALL_ORDERS
    else:
        orders = watched if isinstance(watched, Iterable) else [watched]
        ids = [str(getattr(order, "pk", order)) for order in orders]
        if not ids:
            return ""
        watch = "order:" + ",".join(ids[:100])
    # Since the request started (beile/middleware.py LiveMiddleware): a change committed while
    # the page was being read is refreshed, never missed. An action's answer (POST) is drawn after
    # its own change committed: since now, or the user's own change would refresh the region
    # again a second later and wipe the action's message.
    since = time.time_ns() if request.method == "POST" else getattr(request, "live_since", None) or time.time_ns()
    attributes = format_html(' data-live="{}" data-live-since="{}" data-live-key="{}"', watch, since, live.key_for(request))
    if url:
        attributes += format_html(' data-live-url="{}"', url)
    return attributes
