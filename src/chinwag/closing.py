"""`with thing:` for what has a close(): Stream, Client and the seeds' clients."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self


class Closing:
    """A context manager that closes its object when the block ends, however it ends."""

    if TYPE_CHECKING:

        def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Closing"]
