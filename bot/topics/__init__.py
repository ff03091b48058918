"""The topic language: what a user types after `/papers` or `/papers subscribe`.

A topic is parsed into `Topic`: OR-ed groups of concepts, exclusions and filters. Each concept
knows every way a paper may say it (acronym expansions from `bot.lexicon`, spelling variants,
plurals and stems), so one `Topic` can

* compile to a safe FTS5 expression (`fts.match_any` / `fts.match_all`) to fetch candidates,
  and
* score a paper in Python (`scoring`), saying which words matched in which field.

Modules: `words` (folding, tokens, stems), `language` (the parsed `Topic` and `parse`), `fts`
(the FTS5 expressions), `scoring` (a paper's analysis and its score for a topic).

Syntax: words; `"exact phrase"`; `a OR b` (also `|`); `-word`, `-"phrase"` or `NOT word` to
exclude; `author:"Name"`; `cat:cs.LG` (or a whole archive, `cat:cs`); `title:word` to require a
word in the title. Anything else is read as plain words, so no input can reach SQL or FTS5
unescaped: FTS5 expressions are built only from alphanumeric tokens inside double quotes.
"""

from bot.topics.language import (
    FIELDS,
    MAX_CONCEPTS,
    MAX_TOPIC_CHARS,
    Concept,
    Form,
    Group,
    Topic,
    parse,
    prepare,
)
from bot.topics.scoring import (
    AnalyzedPaper,
    ConceptHit,
    GroupScore,
    analyze,
    analyze_paper,
    concept_hit,
    idf,
    is_excluded,
    score_group,
)
from bot.topics.words import STOPWORDS, stem, stems, words

__all__ = [
    "FIELDS",
    "MAX_CONCEPTS",
    "MAX_TOPIC_CHARS",
    "STOPWORDS",
    "AnalyzedPaper",
    "Concept",
    "ConceptHit",
    "Form",
    "Group",
    "GroupScore",
    "Topic",
    "analyze",
    "analyze_paper",
    "concept_hit",
    "idf",
    "is_excluded",
    "parse",
    "prepare",
    "score_group",
    "stem",
    "stems",
    "words",
]
