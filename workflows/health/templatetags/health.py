from django import template

from workflows.health.models import ConsistencyTask

register = template.Library()


@register.simple_tag(takes_context=True)
def open_status_check_count(context) -> int:
    """The nav badge: status checks waiting for this user (served by the open_status_checks index)."""
    user = context["request"].user
    return ConsistencyTask.objects.filter(assignee=user, answered_at__isnull=True).count()
