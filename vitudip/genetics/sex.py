"""Sex codes: recognise the coding of a sex column, and check it against the genotype files' sex.

PLINK (.fam, .psam ``SEX``, Oxford .sample ``sex``) codes 1 = male, 2 = female, 0 = unknown. UK
Biobank field 31 codes 0 = female, 1 = male. A field-31 column read as PLINK codes turns every
female into "unknown" (and plink2 then drops them on chromosome X) without any error, so the
coding is recognised from the values and anything that fits neither is refused.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger("vitudip.sex")

PLINK = "plink"
UKB_FIELD_31 = "ukb_field_31"
WORDS = "words"

MALE, FEMALE, UNKNOWN = 1, 2, 0

#: Text that means "sex not known" (compared lower-case, after stripping blanks).
MISSING_TEXT = frozenset({"", "na", "nan", "-9"})
#: Words accepted for sex (compared lower-case).
SEX_WORDS = {"male": MALE, "m": MALE, "female": FEMALE, "f": FEMALE}
#: UK Biobank field 31 to PLINK codes.
UKB_TO_PLINK = {0.0: FEMALE, 1.0: MALE}
#: Each coding's values (as :func:`_token` gives them) to PLINK codes.
TO_PLINK: dict[str, Mapping[str | float, int]] = {
    PLINK: {1.0: MALE, 2.0: FEMALE},
    UKB_FIELD_31: UKB_TO_PLINK,
    WORDS: SEX_WORDS,
}

ACCEPTED = (
    "PLINK codes (1 = male, 2 = female; unknown written as empty, NA or -9), "
    "UK Biobank field 31 (0 = female, 1 = male, both present), or the words male/female/M/F"
)

#: Most distinct values quoted in a refusal.
QUOTED_VALUES = 10

Token = str | float | None


def _token(value: object) -> Token:
    """One cell as ``None`` (missing), a lower-case word, or a number.

    Args:
        value: a cell of the sex column, text or number.

    Returns:
        ``None`` for a missing value, the lower-case text for anything that is not a number, else the number.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text in MISSING_TEXT:
            return None
        try:
            number = float(text)
        except ValueError:
            return text
    elif value is None or pd.isna(value):
        return None
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            # Neither text nor a number (a date, say): kept as text, so the refusal quotes it.
            return str(value).strip().lower()
    # -9 is PLINK's other "missing"; "-9.0" from a float column means the same.
    return None if math.isnan(number) or number == -9 else number


def _coding(found: set[Token]) -> str | None:
    """The coding the distinct non-missing values fit, or ``None``.

    Args:
        found: distinct non-missing tokens.

    Returns:
        ``PLINK``, ``UKB_FIELD_31``, ``WORDS``, or ``None`` when they fit none (or mix words and numbers).
    """
    if found and all(isinstance(token, str) for token in found):
        return WORDS if found <= SEX_WORDS.keys() else None
    # A mix of words and numbers fits neither test below. {1} alone is male in both codings, so it is
    # unambiguous; {0} alone is not (female in field 31, unknown in PLINK codes).
    if found <= {1.0, 2.0}:
        return PLINK
    if found == {0.0, 1.0}:
        return UKB_FIELD_31
    return None


def _quoted(values: pd.Series, tokens: list[Token]) -> str:
    """The distinct non-missing values as found in the column, for a refusal."""
    distinct = sorted({str(value).strip() for value, token in zip(values, tokens) if token is not None})
    shown = ", ".join(repr(value) for value in distinct[:QUOTED_VALUES])
    return shown + (f", ... ({len(distinct)} distinct)" if len(distinct) > QUOTED_VALUES else "")


def _hint(found: set[Token]) -> str:
    """Why a common near-miss is refused, or ''."""
    if found == {0.0}:
        return " (0 alone is female in UK Biobank field 31 but unknown in PLINK codes: it cannot be told which)"
    if 0.0 in found and 2.0 in found:
        return (" (0 with 2 mixes the codings: in PLINK codes write unknown as NA or -9, not 0; "
                "in UK Biobank field 31 there is no 2)")
    return ""


def plink_sex_codes(values: pd.Series, source: str) -> tuple[np.ndarray, str]:
    """Sex as PLINK codes, from a column in PLINK codes, UK Biobank field-31 codes, or words.

    Args:
        values: the sex column, text or numbers; empty, NA, nan and -9 mean unknown.
        source: where the column comes from, for messages (e.g. ``"covariates.tsv column 'sex'"``).

    Returns:
        int64 PLINK codes (1 male, 2 female, 0 unknown) and the coding recognised: ``"plink"``,
        ``"ukb_field_31"`` (0 female, 1 male) or ``"words"`` (male/female/M/F, any case).

    Raises:
        ValueError: the distinct non-missing values fit none of the codings (e.g. 0, 1 and 2
            together, 3, 0.5, or 0 alone); the message names ``source``, the values and the codings accepted.
    """
    values = pd.Series(values)
    tokens = [_token(value) for value in values]
    found = {token for token in tokens if token is not None}
    coding = _coding(found)
    if coding is None:
        raise ValueError(f"{source}: sex values {_quoted(values, tokens)} fit no sex coding{_hint(found)}; "
                         f"accepted are {ACCEPTED}")
    mapping = TO_PLINK[coding]
    codes = np.array([UNKNOWN if token is None else mapping[token] for token in tokens], dtype=np.int64)
    males, females = int((codes == MALE).sum()), int((codes == FEMALE).sum())
    logger.info("%s: sex read as %s coding: %d male, %d female, %d unknown",
                source, coding, males, females, codes.size - males - females)
    if males + females == 0 and codes.size:
        logger.warning("%s: no sample has a known sex", source)
    return codes, coding


def check_sex_agreement(
    genotype_sex: np.ndarray,
    covariate_sex: np.ndarray,
    ids: Sequence[str],
    genotype_source: str,
    covariate_source: str,
    max_mismatch: float = 0.01,
) -> None:
    """Check that the genotype files' sex and the covariates' sex agree, sample by sample.

    Args:
        genotype_sex: PLINK codes from the genotype files (1 male, 2 female, anything else unknown).
        covariate_sex: PLINK codes from the covariates (as :func:`plink_sex_codes` returns), same samples and order.
        ids: the samples' IDs, for messages.
        genotype_source: the genotype files, for messages.
        covariate_source: the covariates column, for messages.
        max_mismatch: largest fraction of the samples of known sex in both that may disagree; a
            few real mismatches (sex-check failures) are only logged.

    Raises:
        ValueError: the arrays and IDs differ in length, ``max_mismatch`` is outside [0, 1], or more
            than ``max_mismatch`` of the samples known in both disagree.
    """
    genotype_sex, covariate_sex = np.asarray(genotype_sex), np.asarray(covariate_sex)
    if not genotype_sex.shape == covariate_sex.shape == (len(ids),):
        raise ValueError(f"sex check: {genotype_sex.shape} genotype codes, {covariate_sex.shape} covariate codes "
                         f"and {len(ids)} IDs; they must be one per sample")
    if not 0 <= max_mismatch <= 1:
        raise ValueError(f"sex check: max_mismatch {max_mismatch} is not a fraction between 0 and 1")
    known = np.isin(genotype_sex, (MALE, FEMALE)) & np.isin(covariate_sex, (MALE, FEMALE))
    compared = int(known.sum())
    mismatched = np.flatnonzero(known & (genotype_sex != covariate_sex))
    if compared == 0:
        logger.warning("sex check: no sample has a known sex in both %s and %s; nothing compared",
                       genotype_source, covariate_source)
        return
    first = ", ".join(str(ids[i]) for i in mismatched[:3])
    summary = (f"sex differs between {genotype_source} and {covariate_source} for {mismatched.size} of "
               f"{compared} samples of known sex in both")
    # A division, not max_mismatch * compared: 29 / 100 equals 0.29 exactly, 0.29 * 100 does not equal 29.
    if mismatched.size / compared > max_mismatch:
        raise ValueError(f"{summary} (first: {first}), more than the {max_mismatch:.1%} allowed: one of the two "
                         "likely uses another sex coding (e.g. 0 = male, or 1 = female and 2 = male), "
                         "or the samples are matched to the wrong IDs")
    if mismatched.size:
        # Real data has a few (sample swaps, sex-chromosome aneuploidy): worth a look, not a stop.
        logger.warning("%s (first: %s); within the %.1f%% allowed, so only reported",
                       summary, first, 100 * max_mismatch)
    else:
        logger.info("sex agrees between %s and %s for all %d samples of known sex in both",
                    genotype_source, covariate_source, compared)
