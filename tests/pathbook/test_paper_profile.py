"""The `paper` profile: a chapter's full parameters with its `paper:` entry on top, `${NAME}`
environment references, and the stop before anything runs when a variable is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pathbook.project import PathbookError, load_project

REPO = Path(__file__).resolve().parents[2]
LAYOUT = "an ImageNet validation folder: one subfolder per class"
ENVIRONMENT = {"IMAGENET_VAL": LAYOUT, "CIFAR10_ROOT": "a folder holding cifar-10-batches-py/"}
PHOTOS = 'device = "cpu"\nmodel = "efficientnet_lite0"\nimage_folder = None\nn_images = 2'


@pytest.fixture
def root(make_project) -> Path:
    """photos reads ImageNet in the paper profile, digits has no paper entry."""
    entries = {
        "photos": {
            "quick": {},
            "full": {"n_images": 11, "model": "resnet18"},
            "paper": {"model": "vgg16", "image_folder": "${IMAGENET_VAL}", "n_images": 1000},
        },
        "digits": {"quick": {}, "full": {"n_images": 5}},
    }
    return make_project({"photos": PHOTOS, "digits": PHOTOS}, entries, ENVIRONMENT)


@pytest.fixture
def imagenet(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "imagenet-val"
    folder.mkdir()
    monkeypatch.setenv("IMAGENET_VAL", str(folder))
    return folder


def test_paper_is_full_with_the_paper_entry_on_top(root, imagenet):
    project = load_project(root)
    photos, digits = project.chapter("photos"), project.chapter("digits")
    assert photos.parameters("paper") == {
        "n_images": 1000,
        "model": "vgg16",
        "image_folder": str(imagenet),
    }
    assert digits.parameters("paper") == digits.parameters("full") == {"n_images": 5}
    assert photos.declared("paper")["image_folder"] == "${IMAGENET_VAL}"


def test_variables_expand_whole_or_inside_strings_and_lists(make_project, imagenet, monkeypatch):
    monkeypatch.setenv("CIFAR10_ROOT", "/data/cifar")
    paper = {
        "image_folder": "${IMAGENET_VAL}",
        "labels": "${IMAGENET_VAL}/labels.txt",
        "roots": ["${CIFAR10_ROOT}", "x-${CIFAR10_ROOT}-y", 3],
        "n_images": 4,
    }
    entries = {"c": {"quick": {}, "full": {}, "paper": paper}}
    chapter = load_project(make_project({"c": PHOTOS}, entries, ENVIRONMENT)).chapter("c")
    assert chapter.variables("paper") == ["IMAGENET_VAL", "CIFAR10_ROOT"]
    assert chapter.parameters("paper") == {
        "image_folder": str(imagenet),
        "labels": f"{imagenet}/labels.txt",
        "roots": ["/data/cifar", "x-/data/cifar-y", 3],
        "n_images": 4,
    }


def test_a_variable_the_environment_section_does_not_describe_is_refused(make_project):
    entries = {"c": {"quick": {}, "paper": {"image_folder": "${PHOTO_DIR}"}}}
    with pytest.raises(PathbookError, match="references PHOTO_DIR, which the 'environment:'"):
        load_project(make_project({"c": PHOTOS}, entries, ENVIRONMENT))


def assert_names_variable_chapter_and_layout(err: str, state: str = "unset") -> None:
    assert f"IMAGENET_VAL ({state}), for photos: {LAYOUT}" in err
    assert "digits" not in err and "CIFAR10_ROOT" not in err  # only what the chapters need
    assert "export IMAGENET_VAL=" in err


@pytest.mark.parametrize(
    "args",
    [
        ("build", "--profile", "paper", "--no-html"),
        ("build", "--profile", "paper", "--no-html", "--device", "cpu", "--only", "photos"),
        ("run", "photos", "--profile", "paper"),
        ("status", "--profile", "paper"),
    ],
)
def test_a_missing_variable_stops_before_anything_runs(
    root, cli, executed, monkeypatch, capsys, args
):
    monkeypatch.delenv("IMAGENET_VAL", raising=False)
    assert cli(root, *args) == 2
    assert_names_variable_chapter_and_layout(capsys.readouterr().err)
    assert executed == [], "no chapter was started"
    assert sorted(p.name for p in root.iterdir()) == ["notebooks"], "nothing was written"


def test_a_variable_naming_no_folder_stops_the_build(root, cli, executed, monkeypatch, capsys):
    monkeypatch.setenv("IMAGENET_VAL", str(root / "nowhere"))
    assert cli(root, "build", "--profile", "paper", "--no-html") == 2
    err = capsys.readouterr().err
    assert_names_variable_chapter_and_layout(err, f"{root / 'nowhere'} is not a folder")
    assert executed == []


def test_the_other_profiles_do_not_need_the_variables(root, cli, executed, monkeypatch):
    monkeypatch.delenv("IMAGENET_VAL", raising=False)
    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    assert len(executed) == 2


def test_paper_runs_with_the_expanded_folder_in_fingerprint_and_stamp(
    root, cli, executed, imagenet, capsys
):
    assert cli(root, "build", "--profile", "paper", "--no-html") == 0
    ran = {c["chapter"]: c["parameters"] for c in executed}
    assert ran["photos"]["image_folder"] == str(imagenet) and ran["digits"] == {"n_images": 5}
    stamp = json.loads((root / ".pathbook" / "stamps" / "photos.json").read_text())
    assert stamp["profile"] == "paper"
    assert stamp["components"]["parameters"]["image_folder"] == str(imagenet)
    assert cli(root, "status", "--profile", "paper") == 0
    assert "photos: up to date" in capsys.readouterr().out


def test_the_books_profiles_declare_the_paper_settings():
    """The real profiles.yml (its notebooks are not opened: they gain the parameters elsewhere)."""
    project = load_project(REPO)
    spec = yaml.safe_load((REPO / "notebooks" / "profiles.yml").read_text())
    assert set(project.environment) == {"IMAGENET_VAL", "CIFAR10_ROOT"}
    assert "WordNet id" in project.environment["IMAGENET_VAL"]
    assert "cifar-10-batches-py" in project.environment["CIFAR10_ROOT"]
    paper = {name: chapter.declared("paper") for name, chapter in project.chapters.items()}
    assert paper["pruning_vs_contribution"]["model"] == "vgg16"
    assert paper["pruning_vs_contribution"]["gate_steps"] == 1000  # inherited from full
    assert paper["attribution_maps"]["model"] == "resnet50"
    assert paper["attribution_maps"]["sparsity"] == 0.75
    assert paper["roar"]["dataset"] == "cifar10" and paper["roar"]["data_root"] == "${CIFAR10_ROOT}"
    assert (paper["roar"]["n_train"], paper["roar"]["n_test"]) == (50000, 10000)
    assert paper["getting_started"] == project.chapter("getting_started").declared("full")
    for name in (
        "pruning_vs_contribution",
        "attribution_maps",
        "sanity_checks",
        "pixel_perturbation",
        "sensitivity_n",
        "local_linearity",
        "input_specific_pruning",
    ):
        assert paper[name]["image_folder"] == "${IMAGENET_VAL}", name
        assert "n_photos" not in spec["notebooks"][name]["full"], f"{name}: renamed to n_images"
