"""The report stage: loci joined with PerDI regions, the demo's truth scoring, and bad input."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vitudip.io.atomic import write_tsv
from vitudip.report.stage import TruthFiles, summarise_study
from vitudip.report.summary import study_summary, summary_columns
from vitudip.report.truth import names_planted_region, truth_summary, truth_table

ROOT = Path(__file__).resolve().parent.parent


LOCI_COLUMNS = ["locus", "chromosome", "start", "end", "lead_snp", "lead_p", "lead_dimension", "dimensions", "tests",
                "joint_p", "novel"]
REGIONS_COLUMNS = ["dimension", "region", "side", "n_voxels", "ks_score", "top_fraction_excess", "permutation_p",
                   "rank"]


def loci_table(rows: list[tuple[int, str, str]], tests: dict[int, str] | None = None) -> pd.DataFrame:
    """Merged loci (locus, lead dimension, dimensions) with the other columns filled in; ``tests`` by locus."""
    tests = tests or {}
    return pd.DataFrame([
        {"locus": n, "chromosome": n, "start": 1000 * n, "end": 1000 * n + 500, "lead_snp": f"{n}:1000:A:G",
         "lead_p": 10.0 ** -(8 + n), "lead_dimension": lead, "dimensions": dims, "tests": tests.get(n, "single"),
         "joint_p": 1e-3, "novel": n % 2 == 0}
        for n, lead, dims in rows
    ], columns=LOCI_COLUMNS)


def regions_table(ranking: dict[str, list[tuple[str, str]]]) -> pd.DataFrame:
    """PerDI regions: dimension -> (region, side) best first; rows written worst first, so order must come from rank."""
    rows = [
        {"dimension": dim, "region": region, "side": side, "n_voxels": 100, "ks_score": 1 - rank / 10,
         "top_fraction_excess": 0.0, "permutation_p": 0.5, "rank": rank}
        for dim, ranked in ranking.items() for rank, (region, side) in enumerate(ranked, start=1)
    ]
    return pd.DataFrame(rows[::-1], columns=REGIONS_COLUMNS)


def recovery_table(rows: list[tuple[str, int | None, str]], tests: str = "single") -> pd.DataFrame:
    """loci/truth_recovery.tsv: (effect, locus or None when not found, dimensions), found by ``tests``."""
    return pd.DataFrame([
        {"effect": effect, "variant_id": f"{effect}_snp", "found": locus is not None,
         "tests": tests if locus is not None else "", "locus": locus,
         "lead_snp": f"{locus}:1000:A:G" if locus else None, "lead_distance_bp": 10 if locus else None,
         "lead_p": 1e-10 if locus else None, "dimensions": dims if locus else None}
        for effect, locus, dims in rows
    ])


def planted_table(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["effect", "region", "side"])


# --- summary.tsv ---------------------------------------------------------------------------------------------------

def test_a_locus_reaching_two_dimensions_gives_a_row_for_each_with_the_lead_first_and_regions_by_rank():
    loci = loci_table([(1, "udip_009", "udip_002;udip_009")])
    regions = regions_table({
        "udip_002": [("Thalamus", "both"), ("Thalamus", "left"), ("Putamen", "right"), ("Insular_Cortex", "left")],
        "udip_009": [("Lateral_Ventricle", "both"), ("Caudate", "left")],
    })
    summary = study_summary(loci, regions)
    assert list(summary.columns) == summary_columns(3)
    assert list(summary["dimension"]) == ["udip_009", "udip_002"]
    assert list(summary["is_lead_dimension"]) == [True, False]
    second = summary.iloc[1]
    assert [second[f"region_{k}"] for k in (1, 2, 3)] == ["Thalamus", "Thalamus", "Putamen"]
    assert [second[f"side_{k}"] for k in (1, 2, 3)] == ["both", "left", "right"]
    assert second["ks_score_1"] > second["ks_score_2"] > second["ks_score_3"]
    # only two ranked regions: the third is missing, not borrowed from another dimension
    first = summary.iloc[0]
    assert (first["region_1"], first["region_2"]) == ("Lateral_Ventricle", "Caudate")
    assert pd.isna(first["region_3"]) and pd.isna(first["side_3"])
    assert (summary["locus"] == 1).all() and (summary["lead_snp"] == "1:1000:A:G").all()


def test_a_locus_only_the_joint_test_reaches_gets_its_lead_dimension_and_says_joint():
    loci = loci_table([(1, "udip_009", "udip_002;udip_009"), (2, "udip_004", "")], tests={1: "both", 2: "joint"})
    regions = regions_table({"udip_004": [("Thalamus", "both")], "udip_009": [("Caudate", "left")]})
    summary = study_summary(loci, regions)
    assert list(summary["locus"]) == [1, 1, 2] and list(summary["tests"]) == ["both", "both", "joint"]
    joint_only = summary.iloc[2]
    assert (joint_only["dimension"], joint_only["is_lead_dimension"], joint_only["region_1"]) == (
        "udip_004", True, "Thalamus")
    table = truth_table(recovery_table([("thalamus", 2, "")], tests="joint"), loci,
                        planted_table([("thalamus", "Thalamus", "both")]), regions)
    assert list(table["tests"]) == ["joint"] and list(table["dimension"]) == ["udip_004"]
    assert bool(table["top_match"].iloc[0])


def test_each_locus_dimension_carries_its_heritability():
    loci = loci_table([(1, "udip_009", "udip_002;udip_009")])
    regions = regions_table({"udip_009": [("Caudate", "left")]})
    h2 = pd.DataFrame({"dimension": ["udip_009", "udip_001"], "h2": [0.31, 0.05], "se": [0.04, 0.03]})
    summary = study_summary(loci, regions, heritability=h2)
    assert list(summary.columns) == summary_columns(3)
    assert (summary.at[0, "h2"], summary.at[0, "h2_se"]) == (0.31, 0.04)
    # a dimension without an estimate has none, not another's
    assert summary.at[1, "dimension"] == "udip_002" and pd.isna(summary.at[1, "h2"])
    assert study_summary(loci, regions)["h2"].isna().all()


def test_a_dimension_without_a_perdi_map_gets_missing_regions():
    loci = loci_table([(1, "udip_001", "udip_001;udip_005"), (2, "udip_005", "udip_005")])
    summary = study_summary(loci, regions_table({"udip_001": [("Thalamus", "both")]}))
    assert list(summary["perdi_mapped"]) == [True, False, False]
    assert summary.loc[~summary["perdi_mapped"], ["region_1", "side_1", "ks_score_1"]].isna().all().all()
    assert list(summary["locus"]) == [1, 1, 2]


def locus_regions_table(ranking: dict[int, list[tuple[str, str]]]) -> pd.DataFrame:
    """PerDI locus_regions.tsv: locus -> (region, side) best first, written worst first."""
    return regions_table({str(n): ranked for n, ranked in ranking.items()}).rename(
        columns={"dimension": "locus"}).astype({"locus": int}).assign(lead_snp="x")


def test_every_row_of_a_locus_carries_the_locus_directions_own_top_regions(tmp_path):
    loci = loci_table([(1, "udip_009", "udip_002;udip_009"), (2, "udip_002", "udip_002")])
    regions = regions_table({"udip_002": [("Thalamus", "both")], "udip_009": [("Caudate", "left")]})
    own = locus_regions_table({1: [("Hippocampus", "left"), ("Thalamus", "right"), ("Putamen", "both"),
                                   ("Caudate", "left")]})
    summary = study_summary(loci, regions, 3, own)
    assert list(summary.columns) == summary_columns(3)
    first = summary[summary["locus"] == 1]
    assert len(first) == 2 and first["locus_mapped"].all()
    for _, row in first.iterrows():
        assert [row[f"locus_region_{k}"] for k in (1, 2, 3)] == ["Hippocampus", "Thalamus", "Putamen"]
        assert [row[f"locus_side_{k}"] for k in (1, 2, 3)] == ["left", "right", "both"]
    # the dimensions keep their own regions beside the locus's
    assert list(first["region_1"]) == ["Caudate", "Thalamus"]
    second = summary[summary["locus"] == 2].iloc[0]
    assert not second["locus_mapped"] and pd.isna(second["locus_region_1"]) and second["region_1"] == "Thalamus"
    # through the stage and its script, from the files
    paths = {"loci": tmp_path / "loci.tsv", "regions": tmp_path / "regions.tsv", "own": tmp_path / "locus.tsv"}
    write_tsv(loci, paths["loci"])
    write_tsv(regions, paths["regions"])
    write_tsv(own, paths["own"])
    run = run_script("--loci", paths["loci"], "--regions", paths["regions"], "--locus-regions", paths["own"],
                     "--summary", tmp_path / "s.tsv")
    assert run.returncode == 0, run.stderr
    written = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert list(written["locus_region_1"].fillna("")) == ["Hippocampus", "Hippocampus", ""]


def test_empty_loci_give_a_header_only_summary(tmp_path):
    loci, regions = tmp_path / "loci.tsv", tmp_path / "regions.tsv"
    write_tsv(loci_table([]), loci)
    write_tsv(regions_table({}), regions)
    out = summarise_study(loci, regions, tmp_path / "report" / "summary.tsv")
    text = out["summary"].read_text()
    assert text.strip().split("\t") == summary_columns(3)


# --- truth matching ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("region", "side", "planted", "planted_side", "expected"), [
    ("Hippocampus", "left", "Hippocampus", "left", True),
    ("Hippocampus", "right", "Hippocampus", "left", False),
    ("Hippocampus", "both", "Hippocampus", "left", False),  # names the unplanted right side too
    ("Thalamus", "left", "Thalamus", "both", True),
    ("Thalamus", "right", "Thalamus", "both", True),
    ("Thalamus", "both", "Thalamus", "both", True),
    ("Putamen", "both", "Thalamus", "both", False),
    ("Brain-Stem", "both", "Brain-Stem", "both", True),  # a region without sides
])
def test_a_perdi_row_names_the_planted_region_only_within_its_side(region, side, planted, planted_side, expected):
    assert names_planted_region(region, side, planted, planted_side) is expected


def test_region_names_match_whatever_their_spelling():
    assert names_planted_region("Lateral_Ventricle", "both", "lateral ventricle", "both")
    assert names_planted_region("Lateral_Ventrical", "left", "Lateral_Ventricle", "both")
    assert not names_planted_region("Lateral_Ventricle", "both", "Lateral", "both")


def test_truth_table_ranks_a_left_only_plant_by_its_left_row_and_ignores_right_and_both():
    loci = loci_table([(1, "udip_003", "udip_003;udip_007")])
    regions = regions_table({
        # right first, merged second, left third: the planted rank is 3
        "udip_003": [("Hippocampus", "right"), ("Hippocampus", "both"), ("Hippocampus", "left")],
        "udip_007": [("Hippocampus", "both"), ("Amygdala", "left"), ("Putamen", "left"), ("Hippocampus", "left")],
    })
    table = truth_table(recovery_table([("left_hippocampus", 1, "udip_003;udip_007")]), loci,
                        planted_table([("left_hippocampus", "Hippocampus", "left")]), regions)
    assert list(table["dimension"]) == ["udip_003", "udip_007"]
    assert list(table["planted_rank"]) == [3, 4]
    assert list(table["top_match"]) == [False, False]
    assert list(table["top3_match"]) == [True, False]
    assert table.iloc[0]["top3_regions"] == "Hippocampus/right;Hippocampus/both;Hippocampus/left"
    assert (table.iloc[0]["top_region"], table.iloc[0]["top_side"]) == ("Hippocampus", "right")


def test_truth_table_and_summary_score_a_both_sided_plant_by_any_side_and_count_only_recovered_snps():
    loci = loci_table([(1, "udip_010", "udip_010;udip_011"), (2, "udip_020", "udip_020")])
    regions = regions_table({
        "udip_010": [("Cerebral_White_Matter", "both"), ("Putamen", "left"), ("Caudate", "left"),
                     ("Thalamus", "right")],
        "udip_011": [("Thalamus", "right"), ("Thalamus", "both")],  # not the lead dimension
        "udip_020": [("Frontal_Pole", "left")],
    })
    recovery = recovery_table([("thalamus", 1, "udip_010;udip_011"), ("frontal_pole", 2, "udip_020"),
                               ("hippocampus", None, "")])
    planted = planted_table([("thalamus", "Thalamus", "both"), ("frontal_pole", "Frontal_Pole", "both"),
                             ("hippocampus", "Hippocampus", "left")])
    table = truth_table(recovery, loci, planted, regions)
    thalamus = table[table["effect"] == "thalamus"].set_index("dimension")
    assert thalamus.at["udip_010", "is_lead_dimension"] and not thalamus.at["udip_010", "top3_match"]
    assert thalamus.at["udip_011", "top_match"] and thalamus.at["udip_011", "planted_rank"] == 1
    missed = table[table["effect"] == "hippocampus"]
    assert len(missed) == 1 and not missed["found"].iloc[0] and pd.isna(missed["dimension"].iloc[0])

    summary = truth_summary(table).iloc[0]
    assert (summary["planted"], summary["recovered"], summary["recovered_mapped"]) == (3, 2, 2)
    # thalamus: top 3 only in a non-lead dimension; frontal pole: first in its lead dimension
    assert (summary["top3_any"], summary["top3_lead"], summary["top_any"], summary["top_lead"]) == (2, 1, 2, 1)
    assert summary["fraction_top3_any"] == 1.0 and summary["fraction_top3_lead"] == 0.5
    assert summary["goal_fraction"] == 0.8


def test_the_truth_scores_each_locus_by_its_own_direction_too():
    loci = loci_table([(1, "udip_010", "udip_010"), (2, "udip_020", "udip_020")])
    regions = regions_table({"udip_010": [("Putamen", "left")], "udip_020": [("Caudate", "left")]})
    # locus 1's direction ranks the planted thalamus second; locus 2's has no frontal pole; locus 3 is unmapped
    directions = locus_regions_table({1: [("Putamen", "left"), ("Thalamus", "left"), ("Caudate", "left")],
                                      2: [("Caudate", "left")]})
    recovery = recovery_table([("thalamus", 1, "udip_010"), ("frontal_pole", 2, "udip_020")])
    planted = planted_table([("thalamus", "Thalamus", "both"), ("frontal_pole", "Frontal_Pole", "both")])
    table = truth_table(recovery, loci, planted, regions, locus_regions=directions).set_index("effect")
    assert table.at["thalamus", "locus_planted_rank"] == 2 and table.at["thalamus", "locus_top3_match"]
    assert not table.at["thalamus", "top3_match"]  # its dimension alone misses it
    assert table.at["frontal_pole", "locus_mapped"] and not table.at["frontal_pole", "locus_top3_match"]
    summary = truth_summary(table.reset_index()).iloc[0]
    assert (summary["locus_mapped"], summary["locus_top3"], summary["fraction_locus_top3"]) == (2, 1, 0.5)
    unmapped = truth_table(recovery, loci, planted, regions).set_index("effect")
    assert not unmapped["locus_mapped"].any() and not unmapped["locus_top3_match"].any()


def test_an_unmapped_dimension_never_matches_and_no_recovery_gives_nan_fractions():
    loci = loci_table([(1, "udip_004", "udip_004")])
    table = truth_table(recovery_table([("thalamus", 1, "udip_004")]), loci,
                        planted_table([("thalamus", "Thalamus", "both")]), regions_table({}))
    assert not table["perdi_mapped"].iloc[0] and not table["top3_match"].iloc[0]
    assert pd.isna(table["planted_rank"].iloc[0])
    assert truth_summary(table).iloc[0]["recovered_mapped"] == 0

    none = truth_table(recovery_table([("thalamus", None, "")]), loci_table([]),
                       planted_table([("thalamus", "Thalamus", "both")]), regions_table({}))
    summary = truth_summary(none).iloc[0]
    assert summary["recovered"] == 0 and math.isnan(summary["fraction_top3_any"])


def test_a_planted_effect_without_a_truth_region_is_an_error():
    with pytest.raises(ValueError, match="'thalamus'.*truth regions"):
        truth_table(recovery_table([("thalamus", None, "")]), loci_table([]), planted_table([]), regions_table({}))


# --- the stage and its CLI ---------------------------------------------------------------------------------------

def write_inputs(folder: Path, regions: pd.DataFrame | None = None) -> dict[str, Path]:
    paths = {name: folder / f"{name}.tsv" for name in ("loci", "regions", "recovery", "planted")}
    write_tsv(loci_table([(1, "udip_001", "udip_001")]), paths["loci"])
    write_tsv(regions if regions is not None else regions_table({"udip_001": [("Thalamus", "left")]}),
              paths["regions"])
    write_tsv(recovery_table([("thalamus", 1, "udip_001")]), paths["recovery"])
    write_tsv(planted_table([("thalamus", "Thalamus", "both")]), paths["planted"])
    return paths


def test_the_stage_writes_summary_truth_and_its_score(tmp_path):
    paths = write_inputs(tmp_path)
    out = tmp_path / "report"
    summarise_study(paths["loci"], paths["regions"], out / "summary.tsv",
                    TruthFiles(paths["recovery"], paths["planted"], out / "truth.tsv", out / "truth_summary.tsv"))
    truth = pd.read_csv(out / "truth.tsv", sep="\t")
    assert truth["top_match"].tolist() == [True]
    score = pd.read_csv(out / "truth_summary.tsv", sep="\t")
    assert score["fraction_top3_any"].tolist() == [1.0]
    assert sorted(p.name for p in out.iterdir()) == ["summary.tsv", "truth.tsv", "truth_summary.tsv"]


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_a_regions_table_missing_a_column_stops_with_one_line_naming_the_file(tmp_path):
    paths = write_inputs(tmp_path, regions_table({"udip_001": [("Thalamus", "left")]}).drop(columns="rank"))
    run = run_script("--loci", paths["loci"], "--regions", paths["regions"], "--summary", tmp_path / "s.tsv")
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("error: PerDI regions table") and str(paths["regions"]) in lines[-1]
    assert "lacks column(s) rank" in lines[-1] and "Traceback" not in run.stderr
    assert not (tmp_path / "s.tsv").exists()


def test_the_cli_wants_all_truth_files_or_none(tmp_path):
    paths = write_inputs(tmp_path)
    run = run_script("--loci", paths["loci"], "--regions", paths["regions"], "--summary", tmp_path / "s.tsv",
                     "--truth-recovery", paths["recovery"])
    assert run.returncode == 2 and "go together" in run.stderr
