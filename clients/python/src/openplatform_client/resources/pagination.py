"""Walk every page of a list answer (``{"items", "total", "page", "page_size"}``).

Pages are fetched one at a time, so memory stays flat however long the list.
Offsets are computed by the server per request: objects created or deleted
while iterating may shift an item across a page boundary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Protocol, TypeVar

from openplatform_client.models import Page
from openplatform_client.protocol import Call

T = TypeVar("T")


class Caller(Protocol):
    def call(self, call: Call[T]) -> T: ...


class AsyncCaller(Protocol):
    async def call(self, call: Call[T]) -> T: ...


def iterate(fetch: Callable[[int], Page[T]]) -> Iterator[T]:
    number = 1
    while True:
        page = fetch(number)
        yield from page.items
        if not page.has_next:
            return
        number += 1


async def aiterate(fetch: Callable[[int], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    number = 1
    while True:
        page = await fetch(number)
        for item in page.items:
            yield item
        if not page.has_next:
            return
        number += 1


def query(**values: str | int | None) -> dict[str, str | int]:
    """Query parameters without the ones left unset."""
    return {k: v for k, v in values.items() if v is not None}


def changes(**values: object) -> dict[str, object]:
    """A PUT body with only the fields the caller set."""
    return {k: v for k, v in values.items() if v is not None}
