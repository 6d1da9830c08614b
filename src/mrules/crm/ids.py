"""Salesforce record ids: 15-character case-sensitive ids and their 18-character form.

An id is a 3-character key prefix naming the object, 2 characters for the
instance, a reserved `0` and a 9-character base-62 counter. The API returns
the 18-character form: three more letters, one per block of five characters,
whose bits say which characters of the block are upper-case letters, so the
id survives a case-insensitive comparison.

>>> to18("00Q5e0000000001")
'00Q5e0000000001EAA'
>>> to18("00q5e0000000001eaa")  # the suffix restores the case
'00Q5e0000000001EAA'
>>> to18("001D000000IqhSL")  # the example of Salesforce's documentation
'001D000000IqhSLIAZ'
"""

from __future__ import annotations

import string

__all__ = ["BASE62", "InvalidId", "checksum", "make_id", "prefix_of", "to18"]

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX = string.ascii_uppercase + "012345"
_SAFE = frozenset(string.ascii_letters + string.digits)


class InvalidId(ValueError):
    """A value that is not a 15- or 18-character Salesforce id."""


def checksum(id15: str) -> str:
    """The three suffix letters of a 15-character id."""
    out = []
    for block in range(3):
        bits = 0
        for j, ch in enumerate(id15[block * 5 : block * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << j
        out.append(_SUFFIX[bits])
    return "".join(out)


def to18(value: str) -> str:
    """The 18-character form of an id given in 15 or 18 characters; InvalidId otherwise.

    An 18-character id in the wrong case is repaired from its suffix, as
    Salesforce accepts it; a suffix that cannot belong to the id is refused.
    """
    if not isinstance(value, str) or len(value) not in (15, 18) or not set(value) <= _SAFE:
        raise InvalidId(f"invalid id: {value!r}")
    if len(value) == 15:
        return value + checksum(value)
    if value[15:] == checksum(value[:15]):
        return value  # the common case: an id as the CRM gave it
    body, suffix = value[:15], value[15:].upper()
    chars = list(body)
    for block, letter in enumerate(suffix):
        if letter not in _SUFFIX:
            raise InvalidId(f"invalid id: {value!r}")
        bits = _SUFFIX.index(letter)
        for j in range(5):
            i = block * 5 + j
            upper = bool(bits >> j & 1)
            if upper and not chars[i].isalpha():
                raise InvalidId(f"invalid id: {value!r}")
            if chars[i].isalpha():
                chars[i] = chars[i].upper() if upper else chars[i].lower()
    fixed = "".join(chars)
    return fixed + checksum(fixed)


def make_id(prefix: str, counter: int, instance: str = "5e") -> str:
    """The 18-character id number `counter` of the object with this key prefix."""
    if counter < 0 or counter >= 62**9:
        raise ValueError("id counter out of range")
    digits = []
    n = counter
    for _ in range(9):
        n, r = divmod(n, 62)
        digits.append(BASE62[r])
    id15 = prefix + instance + "0" + "".join(reversed(digits))
    return id15 + checksum(id15)


def prefix_of(id18: str) -> str:
    """The key prefix of an id (its first three characters)."""
    return id18[:3]
