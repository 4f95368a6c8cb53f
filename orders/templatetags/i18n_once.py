"""{% translate %} that translates each fixed message once per language and remembers the text.

Loaded after i18n by the order card (issue 14): its ~70 fixed messages went through gettext,
variable resolution and escaping on every render (~2 ms of the card's CPU here). A message with a
variable, a filter, `as` or a context that is not fixed renders as Django's tag does. The text is
keyed by the active language and the autoescape setting, the only inputs of a fixed message's
output; the catalogs themselves do not change while a process runs. `makemessages` still finds
the messages: it reads the tag's name, not its library."""

from django import template
from django.templatetags.i18n import TranslateNode, do_translate
from django.utils import translation

register = template.Library()


class TranslateOnceNode(TranslateNode):
    def __init__(self, node: TranslateNode):
        super().__init__(node.filter_expression, node.noop, node.asvar, node.message_context)
        context_fixed = node.message_context is None or (
            isinstance(node.message_context.var, str) and not node.message_context.filters
        )
        expression = node.filter_expression
        self.fixed = not node.asvar and not expression.filters and expression.var.literal is not None and context_fixed
        self.texts: dict[tuple[str | None, bool], str] = {}

    def render(self, context):
        if not self.fixed:
            return super().render(context)
        key = (translation.get_language(), context.autoescape)
        text = self.texts.get(key)
        if text is None:
            text = self.texts[key] = super().render(context)
        return text


@register.tag("translate")
def translate(parser, token):
    return TranslateOnceNode(do_translate(parser, token))
