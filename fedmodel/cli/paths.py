"""Path options of every command, with a leading `~` made the user's home folder.

A shell expands `~` only at the start of a word: `--input ~/texts.csv` arrives
expanded, `--input=~/texts.csv` arrives as written, and Python would take
`~` as a folder of that name. Every path option reads its value through
`user_path`, so both spellings name the same file.
"""

from __future__ import annotations

from pathlib import Path


def user_path(value: str) -> Path:
    """`value` as a path, a leading `~` or `~user` expanded."""
    return Path(value).expanduser()
