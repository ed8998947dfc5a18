"""Omniglot split definitions, as the project's own compact data.

- ``VINYALS``: the split of Vinyals et al. (2016) as published with Prototypical Networks
  (Snell et al. 2017, ``data/omniglot/splits/vinyals``): per split, ``(alphabet, first, last)``
  character ranges in the published order. It is by alphabet except Gurmukhi, whose
  characters 1-41 are in train and 42-45 in test. Every character comes with the four
  rotations 0/90/180/270 degrees, each its own class: 1028/172/423 characters,
  4112/688/1692 classes.
- ``BACKGROUND_ALPHABETS`` / ``EVALUATION_ALPHABETS``: Lake et al. (2015)'s two zips
  (30 alphabets / 964 characters and 20 / 659).
- ``LAKE_VAL_ALPHABETS``: the part of the background set the "lake" scheme holds out for
  validation: the background alphabets at positions 5, 11, 17, 23, 29 (0-based) of the
  sorted list, i.e. every sixth (5 alphabets, 158 characters).
- ``LITE``: the split of the small subsets (``images_background_small1/2``): 8 alphabets.

``vinyals_classes(split)`` regenerates the published class lists (``Alphabet/characterNN/rotDDD``)
from these ranges; a data-marked test compares them with the published files.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: (alphabet, first character, last character), in the order of the published lists.
VINYALS: Mapping[str, tuple[tuple[str, int, int], ...]] = MappingProxyType(
    {
        "train": (
            ("Angelic", 1, 20),
            ("Grantha", 1, 43),
            ("N_Ko", 1, 33),
            ("Aurek-Besh", 1, 26),
            ("Japanese_(hiragana)", 1, 52),
            ("Malay_(Jawi_-_Arabic)", 1, 40),
            ("Asomtavruli_(Georgian)", 1, 40),
            ("Sanskrit", 1, 42),
            ("Ojibwe_(Canadian_Aboriginal_Syllabics)", 1, 14),
            ("Korean", 1, 40),
            ("Arcadian", 1, 26),
            ("Greek", 1, 24),
            ("Alphabet_of_the_Magi", 1, 20),
            ("Blackfoot_(Canadian_Aboriginal_Syllabics)", 1, 14),
            ("Futurama", 1, 26),
            ("Gurmukhi", 1, 41),
            ("Tagalog", 1, 17),
            ("Anglo-Saxon_Futhorc", 1, 29),
            ("Braille", 1, 26),
            ("Cyrillic", 1, 33),
            ("Burmese_(Myanmar)", 1, 34),
            ("Avesta", 1, 26),
            ("Gujarati", 1, 48),
            ("Ge_ez", 1, 26),
            ("Syriac_(Estrangelo)", 1, 23),
            ("Atlantean", 1, 26),
            ("Japanese_(katakana)", 1, 47),
            ("Balinese", 1, 24),
            ("Atemayar_Qelisayer", 1, 26),
            ("Glagolitic", 1, 45),
            ("Tifinagh", 1, 55),
            ("Latin", 1, 26),
            ("Inuktitut_(Canadian_Aboriginal_Syllabics)", 1, 16),
        ),
        "val": (
            ("Hebrew", 1, 22),
            ("Mkhedruli_(Georgian)", 1, 41),
            ("Armenian", 1, 41),
            ("Early_Aramaic", 1, 22),
            ("Bengali", 1, 46),
        ),
        "test": (
            ("Gurmukhi", 42, 45),
            ("Kannada", 1, 41),
            ("Keble", 1, 26),
            ("Malayalam", 1, 47),
            ("Manipuri", 1, 40),
            ("Mongolian", 1, 30),
            ("Old_Church_Slavonic_(Cyrillic)", 1, 45),
            ("Oriya", 1, 46),
            ("Syriac_(Serto)", 1, 23),
            ("Sylheti", 1, 28),
            ("Tengwar", 1, 25),
            ("Tibetan", 1, 42),
            ("ULOG", 1, 26),
        ),
    }
)

#: The 30 alphabets of ``images_background.zip`` (Lake et al. 2015), sorted.
BACKGROUND_ALPHABETS: tuple[str, ...] = (
    "Alphabet_of_the_Magi",
    "Anglo-Saxon_Futhorc",
    "Arcadian",
    "Armenian",
    "Asomtavruli_(Georgian)",
    "Balinese",
    "Bengali",
    "Blackfoot_(Canadian_Aboriginal_Syllabics)",
    "Braille",
    "Burmese_(Myanmar)",
    "Cyrillic",
    "Early_Aramaic",
    "Futurama",
    "Grantha",
    "Greek",
    "Gujarati",
    "Hebrew",
    "Inuktitut_(Canadian_Aboriginal_Syllabics)",
    "Japanese_(hiragana)",
    "Japanese_(katakana)",
    "Korean",
    "Latin",
    "Malay_(Jawi_-_Arabic)",
    "Mkhedruli_(Georgian)",
    "N_Ko",
    "Ojibwe_(Canadian_Aboriginal_Syllabics)",
    "Sanskrit",
    "Syriac_(Estrangelo)",
    "Tagalog",
    "Tifinagh",
)

#: The 20 alphabets of ``images_evaluation.zip``, sorted.
EVALUATION_ALPHABETS: tuple[str, ...] = (
    "Angelic",
    "Atemayar_Qelisayer",
    "Atlantean",
    "Aurek-Besh",
    "Avesta",
    "Ge_ez",
    "Glagolitic",
    "Gurmukhi",
    "Kannada",
    "Keble",
    "Malayalam",
    "Manipuri",
    "Mongolian",
    "Old_Church_Slavonic_(Cyrillic)",
    "Oriya",
    "Sylheti",
    "Syriac_(Serto)",
    "Tengwar",
    "Tibetan",
    "ULOG",
)

#: "lake" scheme validation alphabets: every sixth sorted background alphabet (indices 5, 11, ...).
LAKE_VAL_ALPHABETS: tuple[str, ...] = tuple(BACKGROUND_ALPHABETS[5::6])

#: "lite" scheme: alphabets of the small subsets (small1 + small2, Greek and Latin deduplicated).
LITE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "train": ("Japanese_(katakana)", "Korean", "Sanskrit", "Balinese"),
        "val": ("Early_Aramaic",),
        "test": ("Greek", "Latin", "Tagalog"),
    }
)

#: Rotations (in units of 90 degrees) that make separate classes in the "vinyals" and "lite" schemes.
ROTATIONS: tuple[int, ...] = (0, 1, 2, 3)


def character_name(alphabet: str, number: int) -> str:
    """``"Alphabet/characterNN"``, the name of a character (a base class) in the image pool."""
    return f"{alphabet}/character{number:02d}"


def vinyals_characters(split: str) -> list[str]:
    """The characters of a Vinyals split, in the published order."""
    return [character_name(a, n) for a, first, last in VINYALS[split] for n in range(first, last + 1)]


def vinyals_classes(split: str) -> list[str]:
    """The published class list of a Vinyals split: ``Alphabet/characterNN/rotDDD``."""
    return [f"{c}/rot{90 * r:03d}" for c in vinyals_characters(split) for r in ROTATIONS]


def alphabet_sizes() -> dict[str, int]:
    """Number of characters of each of the 50 alphabets (from the Vinyals ranges)."""
    sizes: dict[str, int] = {}
    for ranges in VINYALS.values():
        for a, _, last in ranges:
            sizes[a] = max(sizes.get(a, 0), last)
    return sizes
