"""Iterators that page through list calls transparently (page_size, page_token, next_page_token)."""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

T = TypeVar("T")
R = TypeVar("R")
M = TypeVar("M", bound=Message)


class Page(Generic[T, R]):
    """One page: its items, the token of the next page ("" at the end) and the raw response."""

    __slots__ = ("items", "next_page_token", "response")

    def __init__(self, items: Sequence[T], next_page_token: str, response: R) -> None:
        self.items = list(items)
        self.next_page_token = next_page_token
        self.response = response


class PageIterator(Generic[T, R]):
    """Iterates every item of a list call, fetching the next page only when the current one is used up.

    ``for number in client.list_numbers(states=["ACTIVE"]): ...`` reads every page; ``.pages()`` yields
    :class:`Page` objects instead; ``limit`` stops after that many items (``.pages()``: after the page that
    reaches it). A listing starts at the list method's
    ``page_token`` (a page's ``next_page_token`` from an earlier listing with the same filters), so one page at a
    time is ``client.list_numbers(page_size=50, page_token=token).first_page``; ``first_response`` is that
    page's response (e.g. the status counts of ``list_health``).
    """

    def __init__(self, fetch: Callable[[str], Page[T, R]], *, page_token: str = "", limit: int | None = None) -> None:
        self._fetch = fetch
        self._start = page_token
        self._limit = limit
        self._first: Page[T, R] | None = None
        self._started = False

    @property
    def first_page(self) -> Page[T, R]:
        """The page at the starting token, fetched once (iterating later starts from it)."""
        if self._first is None:
            self._first = self._fetch(self._start)
        return self._first

    @property
    def first_response(self) -> R:
        return self.first_page.response

    def pages(self) -> Iterator[Page[T, R]]:
        if self._started:
            raise RuntimeError("a page iterator can be read once; call the list method again")
        self._started = True
        page, seen = self.first_page, 0
        while True:
            yield page
            seen += len(page.items)
            if not page.next_page_token or _limit_reached(seen, self._limit):
                return
            page = self._fetch(page.next_page_token)

    def __iter__(self) -> Iterator[T]:
        count = 0
        for page in self.pages():
            for item in page.items:
                if self._limit is not None and count >= self._limit:
                    return
                yield item
                count += 1

    def to_list(self) -> list[T]:
        return list(self)


class AsyncPageIterator(Generic[T, R]):
    """The asyncio twin of :class:`PageIterator`: ``async for item in client.list_numbers(): ...``."""

    def __init__(self, fetch: Callable[[str], Awaitable[Page[T, R]]], *, page_token: str = "",
                 limit: int | None = None) -> None:
        self._fetch = fetch
        self._start = page_token
        self._limit = limit
        self._first: Page[T, R] | None = None
        self._started = False

    async def first_page(self) -> Page[T, R]:
        """The page at the starting token, fetched once (iterating later starts from it)."""
        if self._first is None:
            self._first = await self._fetch(self._start)
        return self._first

    async def first_response(self) -> R:
        return (await self.first_page()).response

    async def pages(self) -> AsyncIterator[Page[T, R]]:
        if self._started:
            raise RuntimeError("a page iterator can be read once; call the list method again")
        self._started = True
        page, seen = await self.first_page(), 0
        while True:
            yield page
            seen += len(page.items)
            if not page.next_page_token or _limit_reached(seen, self._limit):
                return
            page = await self._fetch(page.next_page_token)

    async def _items(self) -> AsyncIterator[T]:
        count = 0
        async for page in self.pages():
            for item in page.items:
                if self._limit is not None and count >= self._limit:
                    return
                yield item
                count += 1

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    async def to_list(self) -> list[T]:
        return [item async for item in self]


def merge_pages(pages: Sequence[Page[Any, M]], items: str, limit: int | None = None) -> M:
    """One response holding the pages' items (the first ``limit`` of them): the last page's other fields,
    without a next page token."""
    merged = type(pages[-1].response)()
    merged.CopyFrom(pages[-1].response)
    field: Any = getattr(merged, items)
    del field[:]
    every = [item for page in pages for item in page.items]
    field.extend(every if limit is None else every[:limit])
    merged.ClearField("next_page_token")
    return merged


def merge_sorted(sources: Sequence[Iterable[T]], key: Callable[[T], Any], *, descending: bool) -> Iterator[T]:
    """One iteration over several sorted listings (each read page by page as the merge needs it)."""
    return heapq.merge(*sources, key=key, reverse=descending)


async def merge_sorted_async(sources: Sequence[AsyncIterator[T]], key: Callable[[T], Any], *,
                             descending: bool) -> AsyncIterator[T]:
    """The asyncio twin of :func:`merge_sorted`."""
    heads: dict[int, T] = {}
    for index, source in enumerate(sources):
        async for item in source:
            heads[index] = item
            break
    while heads:
        pick = (max if descending else min)(heads, key=lambda i: (key(heads[i]), -i if descending else i))
        yield heads.pop(pick)
        async for item in sources[pick]:
            heads[pick] = item
            break


def _limit_reached(seen: int, limit: int | None) -> bool:
    return limit is not None and seen >= limit
