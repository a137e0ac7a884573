"""Sex codes: PLINK, UK Biobank field 31 and words recognised; anything else refused; genotype vs covariate sex."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
import pytest

from vitudip.genetics.sex import check_sex_agreement, plink_sex_codes

SOURCE = "covariates.tsv column 'sex'"
GENOTYPES = "genotypes/chr{1..22,X}.bed"
#: Both codings the refusals must name.
CODINGS = ("PLINK codes (1 = male, 2 = female", "UK Biobank field 31 (0 = female, 1 = male")


def codes_of(values: list, dtype: str | None = None) -> tuple[list[int], str]:
    codes, coding = plink_sex_codes(pd.Series(values, dtype=dtype), SOURCE)
    assert codes.dtype == np.int64
    return codes.tolist(), coding


# ---------------------------------------------------------------------------
# Codings recognised


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([1, 2, 2, 1], None, [1, 2, 2, 1]),
        (["1", "2", "2", "1"], "object", [1, 2, 2, 1]),
        ([1.0, np.nan, 2.0, -9.0], None, [1, 0, 2, 0]),
        (["1", "", "NA", "nan", "-9", "2", " 2 ", "NaN", "na"], "object", [1, 0, 0, 0, 0, 2, 2, 0, 0]),
        ([1, 1, 1], None, [1, 1, 1]),  # 1 alone is male in both codings
        (["2", "NA"], "object", [2, 0]),
    ],
)
def test_plink_coding_is_recognised(values, dtype, expected):
    assert codes_of(values, dtype) == (expected, "plink")


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([0, 1, 1, 0], None, [2, 1, 1, 2]),
        (["0", "1", "1", "0"], "object", [2, 1, 1, 2]),
        ([0.0, 1.0, np.nan], None, [2, 1, 0]),
        (["1", "", "0", "NA", "-9", "nan"], "object", [1, 0, 2, 0, 0, 0]),
        ([True, False], "bool", [1, 2]),
    ],
)
def test_ukb_field_31_is_recognised_and_mapped_female_2_male_1(values, dtype, expected):
    assert codes_of(values, dtype) == (expected, "ukb_field_31")


def test_ukb_field_31_maps_every_sample_exactly():
    rng = np.random.default_rng(31)
    field_31 = rng.integers(0, 2, 500)
    codes, coding = plink_sex_codes(pd.Series(field_31), SOURCE)
    assert coding == "ukb_field_31"
    np.testing.assert_array_equal(codes, np.where(field_31 == 0, 2, 1))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["Male", "FEMALE", "m", "F", "female", "male"], [1, 2, 1, 2, 2, 1]),
        (["M", "", "NA", "f", None], [1, 0, 0, 2, 0]),
        ([" female "], [2]),
    ],
)
def test_the_words_male_female_m_f_are_recognised(values, expected):
    assert codes_of(values, "object") == (expected, "words")


def test_the_coding_and_the_counts_are_logged(caplog):
    with caplog.at_level(logging.INFO, logger="vitudip.sex"):
        plink_sex_codes(pd.Series(["0", "1", "0", "NA", "0"]), SOURCE)
    assert f"{SOURCE}: sex read as ukb_field_31 coding: 1 male, 3 female, 1 unknown" in caplog.messages


def test_a_column_of_unknowns_is_plink_and_warned(caplog):
    with caplog.at_level(logging.INFO, logger="vitudip.sex"):
        assert codes_of(["NA", "", "-9"], "object") == ([0, 0, 0], "plink")
    assert f"{SOURCE}: no sample has a known sex" in caplog.messages


# ---------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(
    ("values", "quoted"),
    [
        ([0, 1, 2], "'0', '1', '2'"),
        (["0", "1", "2", "NA"], "'0', '1', '2'"),
        ([1, 2, 3], "'1', '2', '3'"),
        ([0.5, 1.0], "'0.5', '1.0'"),
        ([0, 0, 0], "'0'"),
        (["0", "NA"], "'0'"),
        ([0, 2], "'0', '2'"),
        (["male", "1"], "'1', 'male'"),
        (["man", "woman"], "'man', 'woman'"),
        (["N/A", "1"], "'1', 'N/A'"),
        ([-1, 1], "'-1', '1'"),
    ],
)
def test_values_fitting_no_coding_are_refused_naming_source_values_and_codings(values, quoted):
    with pytest.raises(ValueError) as refused:
        plink_sex_codes(pd.Series(values, dtype="object"), SOURCE)
    message = str(refused.value)
    assert message.startswith(f"{SOURCE}: sex values {quoted} fit no sex coding")
    for coding in CODINGS:
        assert coding in message


def test_zero_alone_is_refused_as_ambiguous():
    with pytest.raises(ValueError, match=re.escape("0 alone is female in UK Biobank field 31 but unknown in PLINK")):
        plink_sex_codes(pd.Series([0, 0]), SOURCE)


def test_plink_zero_for_unknown_is_told_to_be_written_na():
    with pytest.raises(ValueError, match=re.escape("in PLINK codes write unknown as NA or -9, not 0")):
        plink_sex_codes(pd.Series(["1", "2", "0"]), SOURCE)


def test_a_refusal_quotes_at_most_ten_values():
    with pytest.raises(ValueError, match=re.escape("'18', '19', ... (20 distinct) fit no sex coding")) as refused:
        plink_sex_codes(pd.Series([str(i) for i in range(10, 30)]), SOURCE)
    assert "'20'" not in str(refused.value)


# ---------------------------------------------------------------------------
# Genotype files against covariates


def sexes(n_male: int, n_female: int, n_unknown: int = 0) -> np.ndarray:
    return np.array([1] * n_male + [2] * n_female + [0] * n_unknown, dtype=np.int64)


def ids_of(n: int) -> list[str]:
    return [f"S{i:03d}" for i in range(n)]


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]


def test_agreeing_sex_passes_without_warning(caplog):
    genotype = sexes(60, 40, 5)
    covariate = genotype.copy()
    covariate[:3] = 0  # unknown in the covariates only: not compared
    with caplog.at_level(logging.INFO, logger="vitudip.sex"):
        check_sex_agreement(genotype, covariate, ids_of(105), GENOTYPES, SOURCE)
    assert warnings_in(caplog) == []
    assert f"sex agrees between {GENOTYPES} and {SOURCE} for all 97 samples of known sex in both" in caplog.messages


def test_a_few_mismatches_are_warned_with_their_count(caplog):
    genotype = sexes(100, 100, 10)
    covariate = genotype.copy()
    covariate[[5, 150]] = [2, 1]  # 2 of 200 known in both: exactly the 1% allowed
    with caplog.at_level(logging.INFO, logger="vitudip.sex"):
        check_sex_agreement(genotype, covariate, ids_of(210), GENOTYPES, SOURCE)
    assert warnings_in(caplog) == [
        f"sex differs between {GENOTYPES} and {SOURCE} for 2 of 200 samples of known sex in both "
        "(first: S005, S150); within the 1.0% allowed, so only reported"
    ]


def test_more_mismatches_than_allowed_are_refused_naming_sources_count_ids_and_cause():
    genotype = sexes(100, 100)
    covariate = genotype.copy()
    covariate[[5, 7, 150]] = [2, 2, 1]  # 3 of 200: just over 1%
    expected = (f"sex differs between {GENOTYPES} and {SOURCE} for 3 of 200 samples of known sex in both "
                "(first: S005, S007, S150), more than the 1.0% allowed: one of the two likely uses another "
                "sex coding (e.g. 0 = male")
    with pytest.raises(ValueError, match=re.escape(expected)):
        check_sex_agreement(genotype, covariate, ids_of(200), GENOTYPES, SOURCE)


def test_the_fraction_counts_only_samples_known_in_both():
    genotype = sexes(100, 100, 100)
    covariate = genotype.copy()
    covariate[:3] = 2  # 3 of the 200 known in both (1.5%), though only 1% of all 300 samples
    with pytest.raises(ValueError, match=re.escape("for 3 of 200 samples of known sex in both")):
        check_sex_agreement(genotype, covariate, ids_of(300), GENOTYPES, SOURCE)


def test_swapped_codes_are_refused_with_the_first_three_ids():
    genotype = sexes(30, 20)
    covariate = 3 - genotype  # 1 = female, 2 = male
    expected = "for 50 of 50 samples of known sex in both (first: S000, S001, S002)"
    with pytest.raises(ValueError, match=re.escape(expected)):
        check_sex_agreement(genotype, covariate, ids_of(50), GENOTYPES, SOURCE)


def test_field_31_codes_converted_agree_with_the_genotypes():
    genotype = sexes(30, 20)
    field_31 = pd.Series(np.where(genotype == 1, "1", "0"))
    covariate, _ = plink_sex_codes(field_31, SOURCE)
    check_sex_agreement(genotype, covariate, ids_of(50), GENOTYPES, SOURCE, max_mismatch=0.0)


def test_a_larger_allowance_lets_more_mismatches_through(caplog):
    genotype = sexes(50, 50)
    covariate = genotype.copy()
    covariate[:5] = 2
    with caplog.at_level(logging.WARNING, logger="vitudip.sex"):
        check_sex_agreement(genotype, covariate, ids_of(100), GENOTYPES, SOURCE, max_mismatch=0.05)
    assert len(warnings_in(caplog)) == 1
    with pytest.raises(ValueError, match="for 5 of 100 samples"):
        check_sex_agreement(genotype, covariate, ids_of(100), GENOTYPES, SOURCE, max_mismatch=0.04)


def test_nothing_known_in_both_is_warned(caplog):
    with caplog.at_level(logging.WARNING, logger="vitudip.sex"):
        check_sex_agreement(sexes(2, 0, 2), sexes(0, 0, 4), ids_of(4), GENOTYPES, SOURCE)
    assert warnings_in(caplog) == [
        f"sex check: no sample has a known sex in both {GENOTYPES} and {SOURCE}; nothing compared"
    ]


@pytest.mark.parametrize(("n_covariate", "n_ids"), [(9, 10), (10, 9)])
def test_arrays_of_different_lengths_are_refused(n_covariate, n_ids):
    with pytest.raises(ValueError, match="they must be one per sample"):
        check_sex_agreement(sexes(5, 5), sexes(5, 5)[:n_covariate], ids_of(n_ids), GENOTYPES, SOURCE)


@pytest.mark.parametrize("max_mismatch", [-0.1, 1.5])
def test_a_max_mismatch_outside_0_1_is_refused(max_mismatch):
    with pytest.raises(ValueError, match="is not a fraction between 0 and 1"):
        check_sex_agreement(sexes(5, 5), sexes(5, 5), ids_of(10), GENOTYPES, SOURCE, max_mismatch=max_mismatch)
