"""A comment's text as HTML: escaped, line breaks kept, and the members it names (@username) marked."""
from __future__ import annotations

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from review.models import Comment
from review.services import MENTION

register = template.Library()


@register.filter
def comment_html(comment: Comment) -> SafeString:
    named = {mention.user.username.lower() for mention in comment.mentions.all()}
    parts, last = [], 0
    for match in MENTION.finditer(comment.text):
        name = match.group(1)
        stem = name if name.lower() in named else name.rstrip(".-+@")
        if stem.lower() not in named:
            continue
        parts += [escape(comment.text[last:match.start()]), f'<strong class="mention">@{escape(stem)}</strong>']
        last = match.start() + 1 + len(stem)
    parts.append(escape(comment.text[last:]))
    return mark_safe("".join(parts).replace("\n", "<br>"))  # every piece of the text was escaped above
