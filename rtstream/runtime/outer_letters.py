"""The dead letters of an interval join's left rows let go without a partner (rtstream.engine.outer_rows):
what a later stage or the window refused of them is written right after the windows closed, in the
window loop, before its next checkpoint; the rows' offsets are held until then."""

from __future__ import annotations

from typing import Any

from rtstream.engine.outer_rows import letters_written, take_letters
from rtstream.runtime.dead_letter_file import DeadLetterFile


async def write_outer_letters(engine: Any, dead_letters: DeadLetterFile) -> None:
    for e in getattr(engine, "engines", None) or (engine,):  # every branch's engine, or the one
        if "_outer_letters" not in e.__dict__:
            continue
        letters = take_letters(e)
        if letters:
            await dead_letters.write(letters)
            letters_written(e, letters)
