"""The Atom feeds over HTTP, on the server of /healthz: `GET /feeds/search.atom?q=<topic>` and
each subscriber's private `GET /feeds/digests/<secret>.atom`.

Thin: a request becomes one `PaperBot` call, and the `bot.feeds.Feed` it returns the response.
What belongs to HTTP is here: conditional requests (If-None-Match against the ETag first, else
If-Modified-Since against Last-Modified, RFC 9110 13.2.2), caching headers, and the status of
bad input: 400 with the reason for an unusable topic, 404 for any secret that opens no feed
(malformed, unknown or replaced alike, so an answer never tells which). Nothing logged here
holds a secret or a topic.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.errors import InvalidQuery
from bot.feeds import DIGESTS_PATH, SEARCH_PATH, Feed
from bot.markup import plain
from bot.service import PaperBot

log = logging.getLogger(__name__)

ATOM = "application/atom+xml"
# Readers poll every few minutes to hours; a proxy may keep a topic's feed for five.
SEARCH_CACHE = "public, max-age=300"
# A private feed is nobody's business but its reader's: no shared cache keeps it.
DIGESTS_CACHE = "private, max-age=300"
NOT_FOUND = "There is no feed at this address. `/papers feed` in chat shows yours.\n"
UNAVAILABLE = "The feed cannot be built just now; please try again in a minute.\n"


def not_modified(request: web.Request, feed: Feed) -> bool:
    """Whether the reader already holds this feed: its If-None-Match names the ETag (weak
    comparison, or `*`), or, without If-None-Match, its If-Modified-Since is not older."""
    tags = request.if_none_match
    if tags is not None:
        return any(tag.value in ("*", feed.etag) for tag in tags)
    since = request.if_modified_since
    return since is not None and feed.last_modified <= since


def _answer(request: web.Request, feed: Feed, cache: str) -> web.Response:
    headers = {
        "ETag": feed.etag_header,
        "Last-Modified": _http_date(feed),
        "Cache-Control": cache,
        "X-Content-Type-Options": "nosniff",
    }
    if not_modified(request, feed):
        return web.Response(status=304, headers=headers)
    response = web.Response(body=feed.body, content_type=ATOM, charset="utf-8", headers=headers)
    # 50 abstracts: ~90 kB, a quarter of it gzipped (aiohttp compresses on a worker thread).
    response.enable_compression()
    return response


def _http_date(feed: Feed) -> str:
    return feed.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT")


def add_feed_routes(app: web.Application, bot: PaperBot) -> None:
    """Add the feed routes to an aiohttp application (before it starts)."""

    async def search(request: web.Request) -> web.Response:
        try:
            feed = await bot.search_feed(request.query.get("q", ""))
        except InvalidQuery as exc:
            return web.Response(status=400, text=plain(str(exc)) + "\n")
        except Exception:  # a bug or a stopped store: an answer, and no topic in the log
            log.exception("search feed failed")
            return web.Response(status=503, text=UNAVAILABLE)
        return _answer(request, feed, SEARCH_CACHE)

    async def digests(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            feed = (
                await bot.digest_feed(name.removesuffix(".atom"))
                if name.endswith(".atom")
                else None
            )
        except Exception:
            # The secret is in the path: the log line names the route only.
            log.exception("private feed failed")
            return web.Response(status=503, text=UNAVAILABLE)
        if feed is None:
            return web.Response(status=404, text=NOT_FOUND)
        response = _answer(request, feed, DIGESTS_CACHE)
        # Links followed from the feed must not carry its address to another site.
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex"
        return response

    app.router.add_get(SEARCH_PATH, search)
    app.router.add_get(DIGESTS_PATH + "{name}", digests)
