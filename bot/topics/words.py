"""Words as the topic language and the FTS5 index see them: folded, tokenized, stemmed."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import snowballstemmer

from bot import lexicon

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not of off on once only or other our ours out over
    own same she should so some such than that the their theirs them then there these they
    this those through to too under until up very via was we were what when where which
    while who whom why will with would you your yours using use used based towards toward
    new novel approach approaches method methods paper papers study reduce reduces reducing
    reduced improve improves improving improved enhance enhancing better""".split()
)

_TOKEN = re.compile(r"[^\W_]+")
_STEMMER = snowballstemmer.stemmer("porter")


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _drop_combining(found: re.Match[str]) -> str:
    return "" if unicodedata.combining(found.group()) else found.group()


def _fold(text: str) -> str:
    # Lower case without accents. Checking every character in Python was a third of analysing
    # a paper (0.1 of 0.34 ms): ASCII text (almost every abstract) has nothing to decompose or
    # drop, and elsewhere only the non-ASCII characters need a look.
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return _NON_ASCII.sub(_drop_combining, decomposed)


def words(text: str) -> list[str]:
    """Lower-case alphanumeric tokens, split as SQLite's unicode61 tokenizer splits them."""
    return _TOKEN.findall(_fold(text))


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The comparable form of a lower-case word: American spelling, then Porter stem."""
    return str(_STEMMER.stemWord(lexicon.american(word)))


def stems(text: str) -> tuple[str, ...]:
    """Comparable stems of a text, in order."""
    return tuple(stem(w) for w in words(text))
