"""Genre name -> family (rock, pop, electronic, ...), for the genres page's "group by family" view.

Pure and deterministic: no database, no network. Spotify's genre names are mostly a family word
with qualifiers in front ("swedish pop", "indie rock", "alternative metal"), so the rule is:

1. Split the name into words (lower case; hyphens and slashes separate words, "hip-hop" and
   "r&b" are normalised).
2. Find every family keyword or phrase in it; a few compound words are matched by their
   ending ("electropop" -> pop, "dubstep" -> electronic, "metalcore" -> metal).
3. A *strong* keyword (latin and reggae styles such as "reggaeton", "salsa", "dancehall") wins
   wherever it appears: "latin pop" is Latin, not pop.
4. Otherwise the rightmost keyword decides (the head noun): "indie rock" -> rock,
   "pop punk" -> punk, "dance pop" -> pop, "pop rap" -> hip hop.
5. No keyword: "other" (or "world" for a few regional styles without a family word).

"indie" is a family of its own only for names whose head is "indie" or "alternative"
("swedish indie", "alternative"); "indie pop" is pop.
"""

from __future__ import annotations

import re
from functools import lru_cache

ROCK = "rock"
POP = "pop"
ELECTRONIC = "electronic"
HIP_HOP = "hip hop"
JAZZ = "jazz"
METAL = "metal"
FOLK = "folk"
CLASSICAL = "classical"
COUNTRY = "country"
RNB_SOUL = "r&b/soul"
LATIN = "latin"
REGGAE = "reggae"
BLUES = "blues"
PUNK = "punk"
INDIE = "indie"
WORLD = "world"
OTHER = "other"

# Display order of the family view, and the label each family is shown with.
FAMILIES: tuple[str, ...] = (
    POP,
    ROCK,
    INDIE,
    ELECTRONIC,
    HIP_HOP,
    RNB_SOUL,
    JAZZ,
    BLUES,
    METAL,
    PUNK,
    FOLK,
    COUNTRY,
    CLASSICAL,
    LATIN,
    REGGAE,
    WORLD,
    OTHER,
)
FAMILY_LABELS: dict[str, str] = {
    POP: "Pop",
    ROCK: "Rock",
    INDIE: "Indie & alternative",
    ELECTRONIC: "Electronic & dance",
    HIP_HOP: "Hip hop & rap",
    RNB_SOUL: "R&B & soul",
    JAZZ: "Jazz",
    BLUES: "Blues",
    METAL: "Metal",
    PUNK: "Punk & hardcore",
    FOLK: "Folk & singer-songwriter",
    COUNTRY: "Country",
    CLASSICAL: "Classical",
    LATIN: "Latin",
    REGGAE: "Reggae",
    WORLD: "World",
    OTHER: "Other",
}

# Whole words or phrases (as space-separated words) -> family.
KEYWORDS: dict[str, str] = {
    # rock
    "rock": ROCK,
    "grunge": ROCK,
    "shoegaze": ROCK,
    "britpop": ROCK,
    "new wave": ROCK,
    "post-rock": ROCK,
    "psychedelia": ROCK,
    "rockabilly": ROCK,
    "surf": ROCK,
    "krautrock": ROCK,
    "math rock": ROCK,
    # pop
    "pop": POP,
    "k-pop": POP,
    "j-pop": POP,
    "c-pop": POP,
    "mandopop": POP,
    "cantopop": POP,
    "schlager": POP,
    "chanson": POP,
    "boy band": POP,
    "girl group": POP,
    "idol": POP,
    "adult standards": POP,
    "easy listening": POP,
    # electronic
    "electronic": ELECTRONIC,
    "electronica": ELECTRONIC,
    "electro": ELECTRONIC,
    "edm": ELECTRONIC,
    "house": ELECTRONIC,
    "techno": ELECTRONIC,
    "trance": ELECTRONIC,
    "ambient": ELECTRONIC,
    "idm": ELECTRONIC,
    "downtempo": ELECTRONIC,
    "trip hop": ELECTRONIC,
    "drum and bass": ELECTRONIC,
    "dnb": ELECTRONIC,
    "jungle": ELECTRONIC,
    "breakbeat": ELECTRONIC,
    "dance": ELECTRONIC,
    "disco": ELECTRONIC,
    "garage": ELECTRONIC,
    "hardstyle": ELECTRONIC,
    "eurodance": ELECTRONIC,
    "chillwave": ELECTRONIC,
    "lo-fi": ELECTRONIC,
    "lofi": ELECTRONIC,
    "chiptune": ELECTRONIC,
    "glitch": ELECTRONIC,
    "nightcore": ELECTRONIC,
    "breakcore": ELECTRONIC,
    "happy hardcore": ELECTRONIC,
    "big beat": ELECTRONIC,
    "bass music": ELECTRONIC,
    # hip hop
    "hip hop": HIP_HOP,
    "rap": HIP_HOP,
    "trap": HIP_HOP,
    "drill": HIP_HOP,
    "grime": HIP_HOP,
    "boom bap": HIP_HOP,
    "phonk": HIP_HOP,
    "crunk": HIP_HOP,
    "hyphy": HIP_HOP,
    "turntablism": HIP_HOP,
    # jazz
    "jazz": JAZZ,
    "bebop": JAZZ,
    "swing": JAZZ,
    "big band": JAZZ,
    "bossa nova": LATIN,
    "fusion": JAZZ,
    "dixieland": JAZZ,
    "vocal jazz": JAZZ,
    # metal
    "metal": METAL,
    "metalcore": METAL,
    "deathcore": METAL,
    "grindcore": METAL,
    "mathcore": METAL,
    "djent": METAL,
    "doom": METAL,
    "sludge": METAL,
    "thrash": METAL,
    "nwobhm": METAL,
    # punk
    "punk": PUNK,
    "hardcore": PUNK,
    "post-hardcore": PUNK,
    "emo": PUNK,
    "screamo": PUNK,
    "oi": PUNK,
    # folk
    "folk": FOLK,
    "singer-songwriter": FOLK,
    "americana": FOLK,
    "bluegrass": COUNTRY,
    "celtic": FOLK,
    "acoustic": FOLK,
    "visa": FOLK,
    # classical
    "classical": CLASSICAL,
    "baroque": CLASSICAL,
    "opera": CLASSICAL,
    "orchestra": CLASSICAL,
    "orchestral": CLASSICAL,
    "chamber music": CLASSICAL,
    "choral": CLASSICAL,
    "choir": CLASSICAL,
    "romantic era": CLASSICAL,
    "early music": CLASSICAL,
    "minimalism": CLASSICAL,
    "neoclassical": CLASSICAL,
    "classical piano": CLASSICAL,
    "string quartet": CLASSICAL,
    # country
    "country": COUNTRY,
    "honky tonk": COUNTRY,
    "outlaw country": COUNTRY,
    "red dirt": COUNTRY,
    # r&b / soul
    "r&b": RNB_SOUL,
    "rnb": RNB_SOUL,
    "soul": RNB_SOUL,
    "funk": RNB_SOUL,
    "motown": RNB_SOUL,
    "gospel": RNB_SOUL,
    "quiet storm": RNB_SOUL,
    "new jack swing": RNB_SOUL,
    "doo-wop": RNB_SOUL,
    "doo wop": RNB_SOUL,
    # latin
    "latin": LATIN,
    "latino": LATIN,
    "latina": LATIN,
    "reggaeton": LATIN,
    "salsa": LATIN,
    "bachata": LATIN,
    "cumbia": LATIN,
    "merengue": LATIN,
    "tango": LATIN,
    "samba": LATIN,
    "mpb": LATIN,
    "sertanejo": LATIN,
    "forro": LATIN,
    "forró": LATIN,
    "banda": LATIN,
    "corrido": LATIN,
    "corridos": LATIN,
    "ranchera": LATIN,
    "mariachi": LATIN,
    "norteno": LATIN,
    "norteño": LATIN,
    "flamenco": LATIN,
    "bolero": LATIN,
    "urbano": LATIN,
    "dembow": LATIN,
    "vallenato": LATIN,
    # reggae
    "reggae": REGGAE,
    "dancehall": REGGAE,
    "dub": REGGAE,
    "rocksteady": REGGAE,
    "ska": REGGAE,
    "ragga": REGGAE,
    "lovers rock": REGGAE,
    # blues
    "blues": BLUES,
    "delta blues": BLUES,
    # indie
    "indie": INDIE,
    "alternative": INDIE,
    "alt": INDIE,
    "lo-fi indie": INDIE,
    "bedroom": INDIE,
    # world
    "afrobeat": WORLD,
    "afrobeats": WORLD,
    "afropop": WORLD,
    "highlife": WORLD,
    "amapiano": WORLD,
    "soukous": WORLD,
    "bhangra": WORLD,
    "bollywood": WORLD,
    "filmi": WORLD,
    "qawwali": WORLD,
    "ghazal": WORLD,
    "klezmer": WORLD,
    "fado": WORLD,
    "rebetiko": WORLD,
    "arabesk": WORLD,
    "mbalax": WORLD,
    "gqom": WORLD,
    "kizomba": WORLD,
    "zouk": WORLD,
    "enka": WORLD,
    "carnatic": WORLD,
    "hindustani": WORLD,
    "world": WORLD,
    "traditional": WORLD,
    "anime": OTHER,
    "soundtrack": OTHER,
    "comedy": OTHER,
}

# These decide the family wherever they appear ("latin pop", "reggae rock", "salsa romantica").
STRONG: frozenset[str] = frozenset(
    {"latin", "latino", "latina", "reggaeton", "salsa", "bachata", "cumbia", "merengue"}
    | {"tango", "samba", "mpb", "sertanejo", "forro", "forró", "banda", "corrido", "corridos"}
    | {"ranchera", "mariachi", "norteno", "norteño", "bolero", "urbano", "dembow", "vallenato"}
    | {"reggae", "dancehall", "bossa nova"}
)

# Compound single words matched by their ending: ("electropop" -> pop, "dubstep" -> electronic).
SUFFIXES: tuple[tuple[str, str], ...] = (
    ("metalcore", METAL),
    ("deathcore", METAL),
    ("grindcore", METAL),
    ("hardcore", PUNK),
    ("core", METAL),
    ("metal", METAL),
    ("punk", PUNK),
    ("pop", POP),
    ("rock", ROCK),
    ("step", ELECTRONIC),
    ("wave", ELECTRONIC),
    ("house", ELECTRONIC),
    ("techno", ELECTRONIC),
    ("tronica", ELECTRONIC),
    ("trance", ELECTRONIC),
    ("folk", FOLK),
    ("jazz", JAZZ),
    ("soul", RNB_SOUL),
    ("funk", RNB_SOUL),
    ("gaze", ROCK),
    ("billy", ROCK),
)

# Spelling variants that would otherwise split or hide the family word.
SPELLINGS: tuple[tuple[str, str], ...] = (
    ("hip-hop", "hip hop"),
    ("r'n'b", "r&b"),
    ("r 'n' b", "r&b"),
    ("rhythm and blues", "r&b"),
    ("drum & bass", "drum and bass"),
    ("drum'n'bass", "drum and bass"),
    ("d&b", "drum and bass"),
)

MAX_PHRASE_WORDS = max(len(phrase.split()) for phrase in KEYWORDS)

_SEPARATORS = re.compile(r"[\s/_,]+")


def _words(name: str) -> list[str]:
    text = name.casefold().strip()
    for variant, canonical in SPELLINGS:
        text = text.replace(variant, canonical)
    words: list[str] = []
    for word in _SEPARATORS.split(text):
        if not word:
            continue
        # Keep known hyphenated keywords whole ("k-pop", "singer-songwriter", "lo-fi").
        if "-" in word and word not in KEYWORDS:
            words.extend(part for part in word.split("-") if part)
        else:
            words.append(word)
    return words


def _suffix_family(word: str) -> str | None:
    for suffix, family in SUFFIXES:
        if word.endswith(suffix) and len(word) > len(suffix):
            return family
    return None


@lru_cache(maxsize=16384)
def genre_family(name: str) -> str:
    """The family of one genre name; always one of FAMILIES ("other" when nothing matches)."""
    words = _words(name)
    # Matches are consumed left to right without overlap, so the last one is the rightmost.
    rightmost: str | None = None
    position = 0
    while position < len(words):
        matched = 0
        for length in range(min(MAX_PHRASE_WORDS, len(words) - position), 0, -1):
            phrase = " ".join(words[position : position + length])
            family = KEYWORDS.get(phrase)
            if family is None and length == 1:
                family = _suffix_family(phrase)
            if family is None:
                continue
            if phrase in STRONG:
                return family
            rightmost = family
            matched = length
            break
        position += max(matched, 1)
    return rightmost or OTHER


def family_label(family: str) -> str:
    return FAMILY_LABELS.get(family, FAMILY_LABELS[OTHER])
