"""A study's images and orders: one encoding whatever the source, balanced seeded orders per
rater, bad input refused with one line and exit code 2."""

from __future__ import annotations

import numpy as np
import pytest

from common.cli import run_cli
from common.errors import UserError


def test_every_encoded_image_has_the_same_byte_length_whatever_its_pixels():
    from validator.turing.study import encode_png

    rng = np.random.default_rng(0)
    flat = np.full((64, 64, 3), 200, np.uint8)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len({len(encode_png(flat)), len(encode_png(noise))}) == 1


def test_each_rater_gets_a_balanced_reproducible_order_of_their_own(make_study):
    from validator.turing.study import new_session, rater_order

    store, study = make_study(10)
    roles = {idx: role for idx, role, _n in store.image_roles("s1")}
    orders = [rater_order(study, 10, seq) for seq in (1, 2, 3)]
    assert orders[0] == rater_order(study, 10, 1)
    assert len({tuple(o) for o in orders}) == 3
    for order in orders:
        assert sorted(order) == list(range(10))
        assert sorted(roles[i] for i in order) == ["real"] * 5 + ["synthetic"] * 5
    session = new_session(store, study, "  eve \n ")
    assert store.sessions("s1")[0]["rater"] == "eve"
    assert store.current(session).total == 10


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"per_rater": 7}, "even"),
        ({"per_rater": 102}, "needs 51"),
        ({"name": "../x"}, "study name"),
    ],
)
def test_bad_studies_are_refused(real_dir, synthetic_dir, tmp_path, kwargs, message):
    from validator.turing.store import Store
    from validator.turing.study import create_study

    kwargs = {"name": "s", "per_rater": 4, **kwargs}
    with pytest.raises(UserError, match=message):
        create_study(
            Store(tmp_path / "t.sqlite"), kwargs.pop("name"), real_dir, synthetic_dir,
            size=32, **kwargs,
        )  # fmt: skip


def test_serve_needs_the_token_and_results_a_study(tmp_path, capsys, monkeypatch):
    from validator.cli import main

    monkeypatch.delenv("DERMSYNTH_TURING_TOKEN", raising=False)
    argv = ["turing", "serve", "--study", "s", "--db", str(tmp_path / "t.sqlite")]
    assert run_cli(main, argv, prog="python -m validator") == 2
    assert "admin token" in capsys.readouterr().err
    token_file = tmp_path / "token"
    token_file.write_text("has space\n")
    argv += ["--token-file", str(token_file)]
    assert run_cli(main, argv, prog="python -m validator") == 2
    err = capsys.readouterr().err
    assert "--token-file" in err and "has space" not in err
    argv = ["turing", "results", "--study", "s", "--db", str(tmp_path / "none.sqlite")]
    assert run_cli(main, argv, prog="python -m validator") == 2
    assert "no such file" in capsys.readouterr().err


def test_a_link_leading_out_of_a_folder_is_not_part_of_the_study(real_dir, synthetic_dir, tmp_path):
    from validator.turing.store import Store
    from validator.turing.study import create_study

    folder = tmp_path / "real"
    folder.mkdir()
    first, second, outside = sorted(real_dir.iterdir())[:3]
    for path in (first, second):
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "link.jpg").symlink_to(outside)
    with pytest.raises(UserError, match="holds 2 usable images"):
        create_study(Store(tmp_path / "t.sqlite"), "s", folder, synthetic_dir, per_rater=6, size=32)
