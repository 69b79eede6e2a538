"""Three-letter ISO 639-2/639-3 codes that have a two-letter ISO 639-1 equivalent.

Speech recognisers name languages with two letters (``pt``) while NLLB-style
models use three (``por_Latn``); folding the three-letter forms lets both meet on
one code. The table covers the languages Whisper recognises and a few more; a
three-letter code not listed here is kept as it is.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEPRECATED", "NOT_A_LANGUAGE", "TWO_LETTER"]

TWO_LETTER: Final[dict[str, str]] = {
    "afr": "af", "alb": "sq", "als": "sq", "amh": "am", "ara": "ar", "arb": "ar",
    "arm": "hy", "asm": "as", "aze": "az", "azj": "az", "bak": "ba", "baq": "eu",
    "bel": "be", "ben": "bn", "bod": "bo", "bos": "bs", "bre": "br", "bul": "bg",
    "bur": "my", "cat": "ca", "ces": "cs", "chi": "zh", "cmn": "zh", "cym": "cy",
    "cze": "cs", "dan": "da", "deu": "de", "dut": "nl", "ekk": "et", "ell": "el",
    "eng": "en", "epo": "eo", "est": "et", "eus": "eu", "fao": "fo", "fas": "fa",
    "fin": "fi", "fra": "fr", "fre": "fr", "fry": "fy", "geo": "ka", "ger": "de",
    "gla": "gd", "gle": "ga", "glg": "gl", "gre": "el", "guj": "gu", "hat": "ht",
    "hau": "ha", "heb": "he", "hin": "hi", "hrv": "hr", "hun": "hu", "hye": "hy",
    "ibo": "ig", "ice": "is", "ind": "id", "isl": "is", "ita": "it", "jav": "jv",
    "jpn": "ja", "kan": "kn", "kas": "ks", "kat": "ka", "kaz": "kk", "khk": "mn",
    "khm": "km", "kin": "rw", "kir": "ky", "kor": "ko", "kur": "ku", "lao": "lo",
    "lat": "la", "lav": "lv", "lin": "ln", "lit": "lt", "ltz": "lb", "lvs": "lv",
    "mac": "mk", "mal": "ml", "mao": "mi", "mar": "mr", "may": "ms", "mkd": "mk",
    "mlg": "mg", "mlt": "mt", "mon": "mn", "mri": "mi", "msa": "ms", "mya": "my",
    "nep": "ne", "nld": "nl", "nno": "nn", "nob": "nb", "nor": "no", "npi": "ne",
    "nya": "ny", "oci": "oc", "ori": "or", "orm": "om", "ory": "or", "pan": "pa",
    "pbt": "ps", "per": "fa", "pes": "fa", "plt": "mg", "pol": "pl", "por": "pt",
    "pus": "ps", "ron": "ro", "rum": "ro", "rus": "ru", "san": "sa", "sin": "si",
    "slk": "sk", "slo": "sk", "slv": "sl", "sna": "sn", "snd": "sd", "som": "so",
    "sot": "st", "spa": "es", "sqi": "sq", "srp": "sr", "sun": "su", "swa": "sw",
    "swe": "sv", "swh": "sw", "tam": "ta", "tat": "tt", "tel": "te", "tgk": "tg",
    "tgl": "tl", "tha": "th", "tib": "bo", "tir": "ti", "tsn": "tn", "tuk": "tk",
    "tur": "tr", "uig": "ug", "ukr": "uk", "urd": "ur", "uzb": "uz", "uzn": "uz",
    "vie": "vi", "wel": "cy", "wol": "wo", "xho": "xh", "ydd": "yi", "yid": "yi",
    "yor": "yo", "zho": "zh", "zsm": "ms", "zul": "zu",
}  # fmt: skip

DEPRECATED: Final[dict[str, str]] = {"in": "id", "iw": "he", "ji": "yi", "jw": "jv"}
"""Withdrawn ISO 639-1 codes that older tools (Java locales, Whisper) still emit."""

NOT_A_LANGUAGE: Final = frozenset({"mis", "mul", "und", "zxx"})
"""ISO 639 codes for 'uncoded', 'multiple', 'undetermined' and 'no linguistic content'."""
