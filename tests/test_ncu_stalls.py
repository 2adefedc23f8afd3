"""bench/ncu_stalls.py (the Nsight Compute stall summary) on a small CSV in ncu's `--page source --csv` layout."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("ncu_stalls", Path(__file__).resolve().parents[1] / "bench" /
                                              "ncu_stalls.py")
ncu_stalls = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(ncu_stalls)

HEADER = ["Address", "Source", "Warp Stall Sampling (All Samples)", "Warp Stall Sampling (Not-issued Samples)",
          "stall_long_sb", "stall_wait", "stall_long_sb (Not Issued)"]
ROWS = [  # consumer code, then producer code from the first LDGSTS
    ["0x10", "SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [R6]", "1", "1", "0", "1", "9"],
    ["0x20", "@!P0 BRA 0x10", "40", "40", "38", "2", "9"],
    ["0x30", "LDGSTS.E.64 [R1], [R2.64]", "5", "5", "0", "5", "9"],
    ["0x40", "MEMBAR.ALL.CTA", "4", "4", "1", "3", "9"],
    ["0x50", "FENCE.VIEW.ASYNC.S", "50", "50", "50", "0", "9"],
]


def _write(path, kernels):
    lines = []
    for name in kernels:
        lines.append(f'"Kernel Name","{name}",')
        lines.append(",".join(f'"{h}"' for h in HEADER))
        lines += [",".join(f'"{v}"' for v in r) for r in ROWS]
    path.write_text("\n".join(lines) + "\n")


def test_summary_regions_top_and_previous_instruction(tmp_path):
    f = tmp_path / "src.csv"
    _write(f, ["kernel_a", "kernel_b"])
    ks = ncu_stalls.parse(str(f))
    assert [k["name"] for k in ks] == ["kernel_a", "kernel_b"] and len(ks[0]["rows"]) == len(ROWS)
    assert ncu_stalls.reasons(ks[0]["header"], ks[0]["rows"]) == {"stall_long_sb": 89.0, "stall_wait": 11.0}
    text = ncu_stalls.summary(ks[0], split="LDGSTS", top=2).splitlines()
    assert text[1] == "  samples 100, instructions 5"
    assert text[2].startswith("  before /LDGSTS/: 41% of samples; long_sb 38%, wait 3%")
    assert text[3].startswith("  from /LDGSTS/: 59% of samples; long_sb 51%, wait 8%")
    # the top instruction, its main reason, and what it waits behind
    assert text[4] == "   50.0% [long_sb] FENCE.VIEW.ASYNC.S   <- MEMBAR.ALL.CTA"
    assert text[5].startswith("   40.0% [long_sb] @!P0 BRA 0x10")


def test_cli_rejects_a_file_without_kernels(tmp_path, capsys):
    f = tmp_path / "empty.csv"
    f.write_text('"not","ncu"\n')
    assert ncu_stalls.main([str(f)]) == 1
    assert "no kernel found" in capsys.readouterr().err


@pytest.mark.parametrize("split", ["", "NOMATCH"])
def test_no_split_is_one_region(tmp_path, split):
    f = tmp_path / "src.csv"
    _write(f, ["k"])
    text = ncu_stalls.summary(ncu_stalls.parse(str(f))[0], split=split, top=1).splitlines()
    assert text[2].startswith("  all: 100% of samples; long_sb 89%, wait 11%")
