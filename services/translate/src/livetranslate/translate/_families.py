"""The language tokens of multilingual model families (NLLB, M2M100).

A multilingual model is told which language it reads by a token before the
source, and which to write by the first token of the output. OPUS-MT (Marian)
models serve one pair each and need neither.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

from livetranslate.translate.errors import UnsupportedLanguageError

__all__ = ["Family", "language_token"]

Family: TypeAlias = Literal["marian", "nllb", "m2m100"]
"""``marian``: OPUS-MT and other one-pair models; ``nllb``: NLLB-200 (FLORES-200
codes such as ``por_Latn``); ``m2m100``: M2M100 (``__pt__``)."""

NLLB_CODES: Final[dict[str, str]] = {
    "af": "afr_Latn", "am": "amh_Ethi", "ar": "arb_Arab", "as": "asm_Beng", "az": "azj_Latn",
    "ba": "bak_Cyrl", "be": "bel_Cyrl", "bg": "bul_Cyrl", "bn": "ben_Beng", "bo": "bod_Tibt",
    "bs": "bos_Latn", "ca": "cat_Latn", "cs": "ces_Latn", "cy": "cym_Latn", "da": "dan_Latn",
    "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn", "eo": "epo_Latn", "es": "spa_Latn",
    "et": "est_Latn", "eu": "eus_Latn", "fa": "pes_Arab", "fi": "fin_Latn", "fo": "fao_Latn",
    "fr": "fra_Latn", "ga": "gle_Latn", "gd": "gla_Latn", "gl": "glg_Latn", "gu": "guj_Gujr",
    "ha": "hau_Latn", "he": "heb_Hebr", "hi": "hin_Deva", "hr": "hrv_Latn", "ht": "hat_Latn",
    "hu": "hun_Latn", "hy": "hye_Armn", "id": "ind_Latn", "ig": "ibo_Latn", "is": "isl_Latn",
    "it": "ita_Latn", "ja": "jpn_Jpan", "jv": "jav_Latn", "ka": "kat_Geor", "kk": "kaz_Cyrl",
    "km": "khm_Khmr", "kn": "kan_Knda", "ko": "kor_Hang", "ky": "kir_Cyrl", "lb": "ltz_Latn",
    "ln": "lin_Latn", "lo": "lao_Laoo", "lt": "lit_Latn", "lv": "lvs_Latn", "mg": "plt_Latn",
    "mi": "mri_Latn", "mk": "mkd_Cyrl", "ml": "mal_Mlym", "mn": "khk_Cyrl", "mr": "mar_Deva",
    "ms": "zsm_Latn", "mt": "mlt_Latn", "my": "mya_Mymr", "nb": "nob_Latn", "ne": "npi_Deva",
    "nl": "nld_Latn", "nn": "nno_Latn", "no": "nob_Latn", "ny": "nya_Latn", "oc": "oci_Latn",
    "om": "gaz_Latn", "or": "ory_Orya", "pa": "pan_Guru", "pl": "pol_Latn", "ps": "pbt_Arab",
    "pt": "por_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "rw": "kin_Latn", "sa": "san_Deva",
    "sd": "snd_Arab", "si": "sin_Sinh", "sk": "slk_Latn", "sl": "slv_Latn", "sn": "sna_Latn",
    "so": "som_Latn", "sq": "als_Latn", "sr": "srp_Cyrl", "st": "sot_Latn", "su": "sun_Latn",
    "sv": "swe_Latn", "sw": "swh_Latn", "ta": "tam_Taml", "te": "tel_Telu", "tg": "tgk_Cyrl",
    "th": "tha_Thai", "ti": "tir_Ethi", "tk": "tuk_Latn", "tl": "tgl_Latn", "tn": "tsn_Latn",
    "tr": "tur_Latn", "tt": "tat_Cyrl", "ug": "uig_Arab", "uk": "ukr_Cyrl", "ur": "urd_Arab",
    "uz": "uzn_Latn", "vi": "vie_Latn", "wo": "wol_Latn", "xh": "xho_Latn", "yi": "ydd_Hebr",
    "yo": "yor_Latn", "yue": "yue_Hant", "zh": "zho_Hans", "zu": "zul_Latn",
}  # fmt: skip
"""FLORES-200 code per normalised language; Chinese is written in simplified
script and Serbian in Cyrillic unless a model's tokens are given explicitly."""


def language_token(family: Family, language: str) -> str:
    """The token that names ``language`` (a normalised code) to a ``family`` model.

    Raises ``UnsupportedLanguageError`` for a Marian model, which has no such
    tokens, and for an NLLB language not in the table above.
    """
    if family == "m2m100":
        return f"__{language}__"
    if family == "nllb" and language in NLLB_CODES:
        return NLLB_CODES[language]
    raise UnsupportedLanguageError(
        f"no {family} language token known for {language!r}; "
        "give the model's source_prefix and target_prefix explicitly"
    )
