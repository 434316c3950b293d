"""Bad datasets: every bad row, path, layout or dataset option gives one line naming the file, the
row and the fix, and nothing is written. Every command that reads a dataset path takes the same
dataset options (``--format --columns --target --spurious --skip-bad --allow-outside-root``), so the
options an error advises exist on the command that printed it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tests.corpus._corpus import Case, dataset


def _png(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


def _edit(column: str, value: str, row: int = 1) -> Callable[[Path], dict[str, str]]:
    """A setup: the small dataset with ``column`` of data row ``row`` (1-based) set to ``value``."""

    def setup(root: Path) -> dict[str, str]:
        meta = dataset(root) / "metadata.csv"
        lines = meta.read_text().splitlines()
        header = lines[0].split(",")
        cells = lines[row].split(",")
        cells[header.index(column)] = value
        lines[row] = ",".join(cells)
        meta.write_text("\n".join(lines) + "\n")
        return {"data": str(meta)}

    return setup


def _data(root: Path) -> dict[str, str]:
    return {"data": str(dataset(root) / "metadata.csv")}


def _first_image(root: Path) -> tuple[Path, Path]:
    """The small dataset and the image of its first row."""
    data = dataset(root)
    rel = (data / "metadata.csv").read_text().splitlines()[1].split(",")[1]
    return data, data / rel


def _truncated(root: Path) -> dict[str, str]:
    data, img = _first_image(root)
    img.write_bytes(img.read_bytes()[:60])
    return {"data": str(data / "metadata.csv")}


def _corrupt(root: Path) -> dict[str, str]:
    data, img = _first_image(root)
    img.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    return {"data": str(data / "metadata.csv")}


def _txt_renamed_png(root: Path) -> dict[str, str]:
    data, img = _first_image(root)
    img.write_text("just some text\n")
    return {"data": str(data / "metadata.csv")}


def _missing_image(root: Path) -> dict[str, str]:
    data, img = _first_image(root)
    img.unlink()
    return {"data": str(data / "metadata.csv")}


def _text_listed_as_image(root: Path) -> dict[str, str]:
    names = _edit("filename", "notes.txt")(root)
    (Path(names["data"]).parent / "notes.txt").write_text("a text file, not an image\n")
    return names


def _outside_image(root: Path) -> Path:
    """A valid image beside the dataset folder (``root/outside.png``), outside its root."""
    _png(root / "outside.png")
    return root / "outside.png"


def _parent_path(root: Path) -> dict[str, str]:
    _outside_image(root)
    return _edit("filename", "../outside.png")(root)


def _deep_parent_path(root: Path) -> dict[str, str]:
    return _edit("filename", "../../x.png")(root)


def _absolute_path(root: Path) -> dict[str, str]:
    return _edit("filename", str(_outside_image(root)))(root)


def _symlink_out(root: Path) -> dict[str, str]:
    target = _outside_image(root)
    names = _edit("filename", "images/link.png")(root)
    (Path(names["data"]).parent / "images" / "link.png").symlink_to(target)
    return names


def _empty_csv(root: Path) -> dict[str, str]:
    data = dataset(root)
    (data / "metadata.csv").write_text("")
    return {"data": str(data / "metadata.csv")}


def _header_only(root: Path) -> dict[str, str]:
    data = dataset(root)
    meta = data / "metadata.csv"
    meta.write_text(meta.read_text().splitlines()[0] + "\n")
    return {"data": str(meta)}


def _binary_csv(root: Path) -> dict[str, str]:
    data = dataset(root)
    (data / "metadata.csv").write_bytes(b"id,filename,split,y,a\n\xff\xfe,\x00\n")
    return {"data": str(data / "metadata.csv")}


def _duplicate_id(root: Path) -> dict[str, str]:
    meta = dataset(root) / "metadata.csv"
    lines = meta.read_text().splitlines()
    first_id = lines[1].split(",")[0]
    cells = lines[2].split(",")
    cells[0] = first_id
    lines[2] = ",".join(cells)
    meta.write_text("\n".join(lines) + "\n")
    return {"data": str(meta)}


def _no_train(root: Path) -> dict[str, str]:
    meta = dataset(root) / "metadata.csv"
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join([lines[0], *(ln for ln in lines[1:] if ln.split(",")[2] != "0")]) + "\n")
    return {"data": str(meta)}


def _unmapped_table(root: Path) -> dict[str, str]:
    """A table whose columns need a map: ``uid, cls, fold, file``."""
    data = dataset(root)
    lines = (data / "metadata.csv").read_text().splitlines()
    out = ["uid,cls,fold,file"]
    for ln in lines[1:]:
        sid, fname, split, y = ln.split(",")[:4]
        out.append(f"{sid},{y},{split},{fname}")
    (data / "table.csv").write_text("\n".join(out) + "\n")
    return {"table": str(data / "table.csv")}


def _mixed_label_table(root: Path) -> dict[str, str]:
    """The mapped table with one label written as a word among integer labels (row 3)."""
    names = _unmapped_table(root)
    table = Path(names["table"])
    lines = table.read_text().splitlines()
    cells = lines[3].split(",")
    cells[1] = "cat"
    lines[3] = ",".join(cells)
    table.write_text("\n".join(lines) + "\n")
    return names


def _flat_folder(root: Path) -> dict[str, str]:
    data, _ = _first_image(root)
    flat = root / "flat"
    flat.mkdir()
    for k, img in enumerate(sorted((data / "images" / "val").glob("*.png"))[:6]):
        shutil.copy(img, flat / f"{k}.png")
    shutil.rmtree(data)
    return {"flat": str(flat)}


def _one_class_folder(root: Path) -> dict[str, str]:
    names = _flat_folder(root)
    flat = Path(names["flat"])
    (flat / "cats").mkdir()
    for img in flat.glob("*.png"):
        img.rename(flat / "cats" / img.name)
    return names


def _celeba(root: Path) -> dict[str, str]:
    """A four-image CelebA folder (attribute and partition files, ``img_align_celeba/``)."""
    folder = root / "celeba"
    attrs = ["Blond_Hair", "Male", "Smiling"]
    rows = {"000001.jpg": (1, -1, 1), "000002.jpg": (-1, 1, -1), "000003.jpg": (1, 1, 1), "000004.jpg": (-1, -1, 1)}
    lines = [str(len(rows)), " ".join(attrs)] + [f"{k} " + " ".join(map(str, v)) for k, v in rows.items()]
    folder.mkdir()
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (folder / "list_eval_partition.txt").write_text("\n".join(f"{k} {i % 3}" for i, k in enumerate(rows)) + "\n")
    for k in rows:
        _png(folder / "img_align_celeba" / k)
    return {"celeba": str(folder)}


CHECK = ["datasets", "check", "{data}"]
OUT = ["--out", "{root}/out"]

CASES = [
    # bad values: one line naming the file, the row, the column and the fix
    Case("data-label-fractional", CHECK, 1, "row 1 (sample_id 'dc000000') column 'label': label '1.5' is not an integer", setup=_edit("y", "1.5")),
    Case("data-label-fractional-embed", ["embed", "{data}", *OUT], 1, "label '1.5' is not an integer", setup=_edit("y", "1.5")),
    Case("data-label-negative", CHECK, 1, "label -1 is outside the classes (0..1)", setup=_edit("y", "-1", row=3)),
    Case("data-label-outside-named-classes", CHECK, 1, "row 2 (sample_id 'dc000001') column 'label': label 2 is outside", setup=_edit("y", "2", row=2)),
    Case("data-label-word", CHECK, 1, "label 'cat' is not an integer class index", setup=_edit("y", "cat")),
    Case("data-label-empty", CHECK, 1, "label is missing", setup=_edit("y", "")),
    Case("data-attribute-fractional", CHECK, 1, "column 'a': a '0.5' is not an integer", setup=_edit("a", "0.5")),
    Case("data-split-bad", CHECK, 1, "split '7' is not one of train, val, test", setup=_edit("split", "7")),
    Case("data-split-train-empty", CHECK, 1, "the 'train' split is empty", setup=_no_train),
    Case("data-duplicate-id", CHECK, 1, "row 2 (sample_id 'dc000000') column 'sample_id': duplicate sample_id", setup=_duplicate_id),
    Case("data-empty-id", CHECK, 1, "empty sample_id", setup=_edit("id", "")),
    Case("data-empty-csv", CHECK, 1, "cannot parse as CSV", setup=_empty_csv),
    Case("data-header-only-csv", CHECK, 1, "the 'train' split is empty", setup=_header_only),
    Case("data-binary-csv", [*CHECK, "--format", "subpopbench"], 1, "metadata.csv", setup=_binary_csv),
    Case("data-unknown-format", [*CHECK, "--format", "waterbird"], 2, "did you mean 'waterbirds'", setup=_data),
    Case("data-skip-bad-drops-and-reports", [*CHECK, "--skip-bad"], 0, "dropped 1 bad rows", setup=_edit("y", "1.5")),
    # files: every image is decoded, whatever its name
    Case("data-image-missing", CHECK, 1, "row 1 (sample_id 'dc000000') column 'path': file not found", setup=_missing_image),
    Case("data-image-truncated", CHECK, 1, "row 1 (sample_id 'dc000000') column 'path': unreadable image", setup=_truncated),
    Case("data-image-corrupt", CHECK, 1, "column 'path': unreadable image", setup=_corrupt),
    Case("data-image-is-text-named-png", CHECK, 1, "row 1 (sample_id 'dc000000') column 'path': unreadable image", setup=_txt_renamed_png),
    Case("data-text-file-listed-as-image", CHECK, 1, "unreadable image at", setup=_text_listed_as_image),
    # paths stay under the dataset root unless --allow-outside-root
    Case("data-path-parent", CHECK, 1, "row 1 (sample_id 'dc000000') column 'path': path '../outside.png' is outside the dataset root", setup=_parent_path),
    Case("data-path-parent-names-option", CHECK, 1, "pass --allow-outside-root", setup=_deep_parent_path),
    Case("data-path-absolute", CHECK, 1, "is outside the dataset root", setup=_absolute_path),
    Case("data-path-symlink-out", CHECK, 1, "path 'images/link.png' is outside the dataset root", setup=_symlink_out),
    Case("data-path-outside-embed", ["embed", "{data}", *OUT], 1, "--allow-outside-root", setup=_parent_path),
    Case("data-path-outside-run", ["run", "{data}", "-m", "erm", *OUT], 1, "--allow-outside-root", setup=_absolute_path),
    Case("data-path-parent-allowed", [*CHECK, "--allow-outside-root"], 0, "OK", setup=_parent_path),
    Case("data-path-symlink-allowed", [*CHECK, "--allow-outside-root"], 0, "OK", setup=_symlink_out),
    # layouts: a folder of images needs class folders
    Case("data-flat-image-folder", ["datasets", "check", "{flat}"], 1, "no class sub-folders", setup=_flat_folder),
    Case("data-flat-image-folder-layout", ["datasets", "check", "{flat}"], 1, "root/<class>/<image>", setup=_flat_folder),
    Case("data-flat-image-folder-as-imagefolder", ["datasets", "check", "{flat}", "--format", "imagefolder"], 1, "or pass a metadata file", setup=_flat_folder),
    Case("data-flat-image-folder-embed", ["embed", "{flat}", *OUT], 1, "no class sub-folders", setup=_flat_folder),
    Case("data-one-class-folder", ["datasets", "check", "{flat}"], 1, "only one class folder ('cats')", setup=_one_class_folder),
    Case("data-one-class-folder-run", ["run", "{flat}", "-m", "erm", *OUT], 1, "at least two classes", setup=_one_class_folder),
    # the same dataset options on every command that reads a dataset
    Case("data-columns-advised-check", ["datasets", "check", "{table}"], 1, "map one with --columns sample_id=", setup=_unmapped_table),
    Case("data-columns-advised-embed", ["embed", "{table}", *OUT], 1, "map one with --columns sample_id=", setup=_unmapped_table),
    Case("data-columns-advised-run", ["run", "{table}", "-m", "erm", *OUT], 1, "map one with --columns sample_id=", setup=_unmapped_table),
    Case("data-columns-bad-name-embed", ["embed", "{table}", *OUT, "--columns", "sample_id=nope"], 1, "column 'nope' (mapped to 'sample_id') not found", setup=_unmapped_table),
    Case("data-columns-bad-name-run", ["run", "{table}", "-m", "erm", *OUT, "--columns", "sample_id=nope"], 1, "column 'nope' (mapped to 'sample_id') not found", setup=_unmapped_table),
    Case("data-columns-malformed-run", ["run", "{table}", "-m", "erm", *OUT, "--columns", "uid"], 2, "expected canonical=column", setup=_unmapped_table),
    Case("data-label-word-among-numbers", ["datasets", "check", "{table}", "--columns", "sample_id=uid,label=cls,split=fold,path=file"], 1, "row 3 (sample_id 'dc000002') column 'label': label 'cat' is a word, but other rows hold numbers", setup=_mixed_label_table),
    Case("data-columns-map-ok", ["datasets", "check", "{table}", "--columns", "sample_id=uid,label=cls,split=fold,path=file"], 0, "OK", setup=_unmapped_table),
    Case("data-target-not-for-layout-run", ["run", "{data}", "-m", "erm", *OUT, "--target", "Male"], 2, "'target' (--target) does not apply to the subpopbench layout", setup=_data),
    Case("data-celeba-target-typo-embed", ["embed", "{celeba}", *OUT, "--target", "Blond"], 2, "did you mean 'Blond_Hair'", setup=_celeba),
    Case("data-celeba-spurious-typo-run", ["run", "{celeba}", "-m", "erm", *OUT, "--spurious", "male"], 2, "did you mean 'Male'", setup=_celeba),
    Case("data-celeba-options-check", ["datasets", "check", "{celeba}", "--target", "Smiling", "--spurious", "Male"], 0, "celeba (celeba layout): 4 samples, OK", setup=_celeba),
    # sizes and method names are checked before any work
    Case("make-n-train-zero", ["datasets", "make", "digits-color", "--out", "{root}/b", "--n-train", "0"], 2, "'n_train' (--n-train) must be an integer >= 1; got 0"),
    Case("make-n-train-negative", ["datasets", "make", "digits-color", "--out", "{root}/b", "--n-train", "-5"], 2, "(--n-train) must be an integer >= 1"),
    Case("make-n-val-zero", ["datasets", "make", "digits-color", "--out", "{root}/b", "--n-val-per-group", "0"], 2, "(--n-val-per-group) must be"),
    Case("make-n-test-negative", ["datasets", "make", "digits-color", "--out", "{root}/b", "--n-test-per-group", "-1"], 2, "(--n-test-per-group) must be"),
    Case("finetune-method-typo", ["finetune", "{root}/ws", "-m", "{root}/m.parquet", "--method", "groupdr", *OUT], 2, "did you mean 'groupdro'"),
    Case("finetune-method-lists-all", ["finetune", "{root}/ws", "-m", "{root}/m.parquet", "--method", "xyz", *OUT], 2, "contrastive, dfr, dispel, dispel-val, erm, groupdro, masktune"),
    Case("finetune-method-is-a-run-method", ["finetune", "{root}/ws", "-m", "{root}/m.parquet", "--method", "prune", *OUT], 2, "`curate run -m prune`"),
]  # fmt: skip
