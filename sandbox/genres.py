"""The genre vocabulary the sandbox catalog draws from.

Real Spotify genres are family words ("rock", "pop") combined with qualifiers ("swedish pop",
"indie rock"), plus a long tail of oddities. The vocabulary is fixed (it does not depend on the
seed) and ordered from common to rare, because artists draw genres with a skew toward the front.
"""

from __future__ import annotations

# The words Swedify groups genres by; every combined genre ends with one of them.
FAMILIES: tuple[str, ...] = (
    "pop",
    "rock",
    "electronic",
    "hip hop",
    "jazz",
    "metal",
    "folk",
    "classical",
    "country",
    "r&b",
    "soul",
    "punk",
    "blues",
    "reggae",
    "house",
    "techno",
    "ambient",
    "indie",
    "rap",
    "dance",
    "funk",
    "gospel",
    "latin",
    "disco",
    "emo",
    "ska",
    "trance",
    "drum and bass",
    "singer-songwriter",
    "soundtrack",
)

PLACES: tuple[str, ...] = (
    "swedish",
    "norwegian",
    "danish",
    "finnish",
    "icelandic",
    "german",
    "french",
    "italian",
    "spanish",
    "portuguese",
    "brazilian",
    "mexican",
    "argentine",
    "colombian",
    "chilean",
    "japanese",
    "korean",
    "chinese",
    "taiwanese",
    "indian",
    "turkish",
    "greek",
    "russian",
    "polish",
    "czech",
    "dutch",
    "belgian",
    "australian",
    "canadian",
    "uk",
    "irish",
    "scottish",
    "welsh",
    "nigerian",
    "south african",
    "ghanaian",
    "new zealand",
    "austrian",
    "swiss",
    "hungarian",
)

STYLES: tuple[str, ...] = (
    "indie",
    "alternative",
    "experimental",
    "modern",
    "classic",
    "progressive",
    "psychedelic",
    "dark",
    "lo-fi",
    "neo",
    "post",
    "art",
    "dream",
    "chamber",
    "acoustic",
    "deep",
    "hard",
    "soft",
    "garage",
    "underground",
    "melodic",
    "minimal",
    "symphonic",
    "vintage",
    "contemporary",
    "christian",
    "instrumental",
    "atmospheric",
    "gothic",
    "industrial",
)

# Genres real listeners have a lot of; placed right after the bare families so they are common.
HEADLINERS: tuple[str, ...] = (
    "swedish pop",
    "indie rock",
    "indie pop",
    "modern rock",
    "swedish hip hop",
    "alternative rock",
    "classic rock",
    "uk pop",
    "german techno",
    "deep house",
    "progressive metal",
    "swedish indie",
    "nordic folk",
    "art pop",
    "dream pop",
    "neo soul",
)

# Real genre names outside ASCII, which must survive JSON, databases, URLs and HTML intact.
NON_ASCII: tuple[str, ...] = (
    "schlager",
    "música popular brasileira",
    "j-pop",
    "k-indie",
    "ελληνικό ροκ",
    "русский рок",
    "chanson française",
    "türkçe rap",
    "日本のロック",
    "dansktop",
)

# Names chosen to break careless code: HTML and attribute injection, format strings, path
# separators, SQL, and a name far longer than any real one.
HOSTILE: tuple[str, ...] = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{genre}",
    "a/b\\c",
    "'; DROP TABLE genres;--",
    "progressive " * 24 + "post-rock",
)

# Genres given on purpose to a regular share of artists (see library.SPECIAL_EVERY), so that
# every user of a few hundred artists meets all of them.
SPECIAL: tuple[str, ...] = NON_ASCII + HOSTILE


def _build_vocabulary() -> tuple[str, ...]:
    names: list[str] = [*FAMILIES, *HEADLINERS]
    # Interleave qualifiers so the middle of the list mixes places and styles, like real data.
    qualifiers = [q for pair in zip(PLACES, STYLES, strict=False) for q in pair]
    qualifiers += PLACES[len(STYLES) :]
    for qualifier in qualifiers:
        for family in FAMILIES:
            if qualifier != family:
                names.append(f"{qualifier} {family}")
    names += SPECIAL
    seen: set[str] = set()
    unique = [n for n in names if not (n in seen or seen.add(n))]
    return tuple(unique)


VOCABULARY: tuple[str, ...] = _build_vocabulary()
