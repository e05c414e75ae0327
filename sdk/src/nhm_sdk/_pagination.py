"""Iterators that page through list calls transparently (page_size, page_token, next_page_token)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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
    :class:`Page` objects instead; ``limit`` stops after that many items; ``first_response`` is the first
    page's response (e.g. the status counts of ``list_health``).
    """

    def __init__(self, fetch: Callable[[str], Page[T, R]], *, page_token: str = "", limit: int | None = None) -> None:
        self._fetch = fetch
        self._start = page_token
        self._limit = limit
        self._first: Page[T, R] | None = None
        self._started = False

    @property
    def first_response(self) -> R:
        if self._first is None:
            self._first = self._fetch(self._start)
        return self._first.response

    def pages(self) -> Iterator[Page[T, R]]:
        if self._started:
            raise RuntimeError("a page iterator can be read once; call the list method again")
        self._started = True
        token = self._start
        page = self._first if self._first is not None else self._fetch(token)
        while True:
            yield page
            if not page.next_page_token:
                return
            token = page.next_page_token
            page = self._fetch(token)

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

    async def first_response(self) -> R:
        if self._first is None:
            self._first = await self._fetch(self._start)
        return self._first.response

    async def pages(self) -> AsyncIterator[Page[T, R]]:
        if self._started:
            raise RuntimeError("a page iterator can be read once; call the list method again")
        self._started = True
        page = self._first if self._first is not None else await self._fetch(self._start)
        while True:
            yield page
            if not page.next_page_token:
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
