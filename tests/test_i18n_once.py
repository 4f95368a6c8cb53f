"""The order card's {% translate %} (orders/templatetags/i18n_once.py) remembers each fixed
message per language and escaping, and renders exactly what Django's tag renders."""

from django.template import Context, Template
from django.utils import translation

MESSAGES = (
    "{% translate 'Orders' %}|{% translate \"I'm on it\" %}|{% translate word %}|{% translate 'Orders' as saved %}{{ saved }}"
    "|{% translate 'Order' context 'a customer order, card heading' %}|{% translate word|lower %}"
    '|{% autoescape off %}{% translate "I\'m on it" %}{% translate word %}{% endautoescape %}'
)
ONCE, DJANGO = Template("{% load i18n i18n_once %}" + MESSAGES), Template("{% load i18n %}" + MESSAGES)


def render(template: Template, language: str, word: str) -> list[str]:
    with translation.override(language):
        return template.render(Context({"word": word})).split("|")


def test_every_language_and_every_variable_renders_as_djangos_tag():
    seen = []
    for language, word in [("en", "Notes"), ("zh-hans", "Notes"), ("zh-hans", "Timeline"), ("en", "<b>Timeline</b>")]:
        assert render(ONCE, language, word) == render(DJANGO, language, word)
        seen.append(render(ONCE, language, word))
    assert seen[0][0] == "Orders" and seen[1][0] == "订单" and seen[1][2] != seen[2][2] and "&lt;b&gt;" in seen[3][2]
