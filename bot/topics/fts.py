"""A topic compiled to FTS5 expressions, to fetch its candidates from the index.

Safe by construction: expressions are built only from alphanumeric tokens inside double
quotes, so nothing a user types reaches FTS5 unescaped.
"""

from __future__ import annotations

from bot.topics.language import Concept, Group, Topic


def concept(found: Concept) -> str:
    """A concept as a safe FTS5 sub-expression."""
    inner = " OR ".join('"' + " ".join(p) + '"' for p in found.phrases)
    if found.fields == ("title",):
        return "{title} : (" + inner + ")"
    return "(" + inner + ")"


def _wrap(topic: Topic, positive: str) -> str:
    filters = " AND ".join('{authors} : "' + " ".join(a) + '"' for a in topic.authors)
    expr = f"({positive}) AND {filters}" if positive and filters else positive or filters
    if topic.exclude and expr:
        expr = f"({expr}) NOT ({' OR '.join(concept(c) for c in topic.exclude)})"
    return expr


def match_all(topic: Topic, group: Group) -> str:
    """FTS5 expression: papers with every concept of the group (and the topic's filters)."""
    return _wrap(topic, " AND ".join(concept(c) for c in group.concepts))


def match_any(topic: Topic, group: Group) -> str:
    """FTS5 expression: papers with any concept of the group (and the topic's filters)."""
    return _wrap(topic, " OR ".join(concept(c) for c in group.concepts))
