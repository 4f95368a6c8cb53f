"""{% url %} that reverses each fixed address once and remembers it, as i18n_once does for
{% translate %}: the base template's navigation alone has a dozen, reversed on every signed-in
page (issue 14). An address with a variable argument, a filter or `as` renders as Django's tag
does. The address is keyed by what reverse() reads besides the literal name and arguments: the
URLconf, the script prefix and the current application (namespaces), and the autoescape setting;
the URL patterns do not change while a process runs."""

from django import template
from django.template.base import Variable
from django.template.defaulttags import URLNode
from django.template.defaulttags import url as do_url
from django.urls import get_script_prefix, get_urlconf

register = template.Library()


def _literal(expression) -> bool:
    # A quoted string or a number is kept resolved; a variable is a Variable without a literal.
    var = expression.var
    return not expression.filters and (not isinstance(var, Variable) or var.literal is not None)


class URLOnceNode(URLNode):
    def __init__(self, node: URLNode):
        super().__init__(node.view_name, node.args, node.kwargs, node.asvar)
        self.fixed = (
            not node.asvar
            and _literal(node.view_name)
            and all(_literal(arg) for arg in node.args)
            and all(_literal(value) for value in node.kwargs.values())
        )
        self.urls: dict[tuple, str] = {}

    def render(self, context):
        if not self.fixed:
            return super().render(context)
        try:  # as URLNode reads it
            current_app = context.request.current_app
        except AttributeError:
            try:
                current_app = context.request.resolver_match.namespace
            except AttributeError:
                current_app = None
        key = (get_urlconf(), get_script_prefix(), current_app, context.autoescape)
        url = self.urls.get(key)
        if url is None:
            url = self.urls[key] = super().render(context)
        return url


@register.tag("url")
def url(parser, token):
    return URLOnceNode(do_url(parser, token))
