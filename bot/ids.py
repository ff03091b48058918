"""arXiv identifiers: recognise them in ids and URLs and strip the version suffix."""

from __future__ import annotations

import re

# New-style ids (YYMM.NNNN or YYMM.NNNNN) and old-style ones (cs/0112017, math.GT/0309136).
_ARXIV_ID = re.compile(
    r"(?P<id>\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?",
)
_FULL = re.compile(rf"^{_ARXIV_ID.pattern}$")
_IN_URL = re.compile(rf"(?:arxiv\.org/(?:abs|pdf)/|huggingface\.co/papers/){_ARXIV_ID.pattern}")


def arxiv_id(text: str | None) -> str | None:
    """The version-less arXiv id if `text` is one (`2401.12345v2` -> `2401.12345`), else None."""
    if not text:
        return None
    match = _FULL.match(text.strip())
    return match.group("id") if match else None


def arxiv_id_from_url(url: str | None) -> str | None:
    """Find a version-less arXiv id in an arXiv or Hugging Face paper URL."""
    if not url:
        return None
    match = _IN_URL.search(url)
    return match.group("id") if match else None


def paper_links(paper_id: str) -> dict[str, str]:
    """The standard abstract, PDF and Hugging Face links of an arXiv paper."""
    return {
        "abs_url": f"https://arxiv.org/abs/{paper_id}",
        "pdf_url": f"https://arxiv.org/pdf/{paper_id}",
        "hf_url": f"https://huggingface.co/papers/{paper_id}",
    }
