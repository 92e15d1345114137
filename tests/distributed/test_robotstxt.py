"""robots.txt answers shared by the workers of a crawl (:mod:`imgscraper.distributed.robotstxt`),
in process against a real ``redis-server``; a crawl of three local workers asking the site once is in
``test_workers.py``."""

from __future__ import annotations

import asyncio

import pytest
from scrapy import Request
from scrapy.http import Response, TextResponse

from imgscraper.distributed.robotstxt import FLAG, MAX_BODY, SharedRobotsTxtMiddleware
from tests.distributed.test_nearduplicates import shared_crawl

pytestmark = pytest.mark.services

ROBOTS = "https://e.example/robots.txt"


def robots_request(url: str = ROBOTS) -> Request:
    return Request(url, meta={"dont_obey_robotstxt": True})


def two_workers(redis_url: str, crawl_id: str, test):
    """Run ``test(first, second)`` with the middlewares of two joined workers of crawl ``crawl_id``."""

    async def run():
        workers = []
        for _ in range(2):
            shared = shared_crawl(redis_url, crawl_id)
            shared.joined = True
            middleware = SharedRobotsTxtMiddleware(shared.crawler)
            middleware.shared = shared
            workers.append(middleware)
        try:
            return await test(*workers)
        finally:
            for middleware in workers:
                await asyncio.gather(*middleware.shared._tasks)
                await middleware.shared.server.aclose()

    return asyncio.run(run())


async def answer(middleware: SharedRobotsTxtMiddleware, request: Request, response: Response) -> None:
    """``response`` reaches ``middleware`` for ``request``, and what it keeps is written."""
    assert middleware.process_response(request, response) is response
    await asyncio.gather(*middleware.shared._tasks)


def test_the_answer_one_worker_got_serves_the_others(redis_url):
    async def test(first, second):
        assert await second.process_request(robots_request()) is None  # nobody asked yet
        body = b"User-agent: *\nDisallow: /private/\n"
        await answer(first, robots_request(), TextResponse(ROBOTS, status=200, body=body,
                                                           headers={"Content-Type": "text/plain"}))
        served = await second.process_request(robots_request())
        moved = robots_request("http://e.example/robots.txt")
        await answer(first, moved, Response(moved.url, status=301, headers={"Location": ROBOTS}))
        redirect = await second.process_request(robots_request("http://e.example/robots.txt"))
        return served, redirect, second.crawler.stats.get_value("imgscraper/shared/robotstxt_reused")

    served, redirect, reused = two_workers(redis_url, "robots-kept", test)
    assert (served.status, served.body, served.url, FLAG in served.flags) == (
        200, b"User-agent: *\nDisallow: /private/\n", ROBOTS, True)
    assert isinstance(served, TextResponse)
    assert (redirect.status, redirect.headers.get("Location")) == (301, ROBOTS.encode())
    assert reused == 2


@pytest.mark.parametrize(("status", "body", "request_meta", "kept"), [
    (404, b"", {"dont_obey_robotstxt": True}, True),
    (503, b"busy", {"dont_obey_robotstxt": True}, False),  # to retry: the next worker asks the site
    (429, b"slow down", {"dont_obey_robotstxt": True}, False),
    (200, b"#" * (MAX_BODY + 1), {"dont_obey_robotstxt": True}, False),
    (200, b"a page named robots.txt", {}, False),  # not a robots.txt fetch of the crawl's
], ids=["404", "503", "429", "too-large", "a-page"])
def test_what_is_kept(redis_url, status, body, request_meta, kept):
    async def test(first, second):
        request = Request(ROBOTS, meta=request_meta)
        await answer(first, request, Response(ROBOTS, status=status, body=body))
        return await second.process_request(robots_request())

    served = two_workers(redis_url, f"robots-{status}-{len(body)}-{len(request_meta)}", test)
    assert (served is not None) == kept
    if kept:
        assert (served.status, served.body) == (status, body)


def test_an_answer_read_from_redis_is_not_written_again(redis_url):
    async def test(first, second):
        await answer(first, robots_request(), Response(ROBOTS, status=200, body=b"User-agent: *\n"))
        served = await second.process_request(robots_request())
        await second.shared.server.hdel(second.shared.key("robots"), ROBOTS)
        await answer(second, robots_request(), served)
        return await second.shared.server.hexists(second.shared.key("robots"), ROBOTS)

    assert two_workers(redis_url, "robots-once", test) == 0
