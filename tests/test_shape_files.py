"""Shape files a user has, read into the model's point clouds: every format from a real file,
each kind of bad input refused in one line naming the file, up axes turned, huge clouds cut."""

from __future__ import annotations

import laspy
import numpy as np
import pytest
import trimesh
from pypcd4 import Encoding
from pypcd4 import PointCloud as PcdCloud

from cg3d.data import point_files, shape_files, stages
from cg3d.data.manifest import shard_names
from cg3d.data.points import normalise_to_unit_sphere, unit_vectors
from cg3d.data.shape_files import ShapeFileError, iter_shape_files, read_shape
from cg3d.data.shards import column_to_points, read_meta, read_table
from helpers.layouts import write_off

RNG = np.random.default_rng(0)
POINTS = RNG.uniform(-1, 1, (200, 3)) * [0.5, 2.0, 1.0]  # tallest along y
NORMALS = unit_vectors(RNG.normal(size=(200, 3)))
COLOURS = RNG.integers(0, 256, (200, 3), dtype=np.uint8)


def expected_points(points=POINTS):
    return normalise_to_unit_sphere(points)


# --- writers of real files -------------------------------------------------------------------


def write_pcd(path, fields, types, columns, data="ascii", width=None, height=1):
    """A PCD file as PCL writes it, header by hand; ``columns`` one array per field."""
    count = len(columns[0])
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        f"FIELDS {' '.join(fields)}\nSIZE {' '.join('4' for _ in fields)}\nTYPE {' '.join(types)}\n"
        f"COUNT {' '.join('1' for _ in fields)}\nWIDTH {width or count}\nHEIGHT {height}\n"
        f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {count}\nDATA {data}\n"
    )
    dtype = np.dtype([(name, "<f4" if kind == "F" else "<u4") for name, kind in zip(fields, types)])
    table = np.empty(count, dtype)
    for name, column in zip(fields, columns):
        table[name] = column
    if data == "ascii":
        body = "".join(" ".join(repr(value.item()) for value in row) + "\n" for row in table)
        path.write_text(header + body)
    else:
        path.write_bytes(header.encode() + table.tobytes())
    return path


def packed_rgb(colours):
    return (colours[:, 0].astype(np.uint32) << 16) | (colours[:, 1].astype(np.uint32) << 8) | colours[:, 2]


def write_las(path, points, colours16=None):
    header = laspy.LasHeader(point_format=3 if colours16 is not None else 0, version="1.2")
    header.scales, header.offsets = [0.001] * 3, [0.0] * 3
    las = laspy.LasData(header)
    las.x, las.y, las.z = points.T
    if colours16 is not None:
        las.red, las.green, las.blue = colours16.T
    las.write(path)
    return path


def write_binary_ply(path, points, normals, colours):
    names = ("x", "y", "z", "nx", "ny", "nz", "red", "green", "blue")
    dtype = np.dtype([(name, "<f4") for name in names[:6]] + [(name, "u1") for name in names[6:]])
    table = np.empty(len(points), dtype)
    for index, name in enumerate(names):
        table[name] = np.column_stack([points, normals, colours])[:, index]
    properties = "".join(f"property {'float' if dtype[n] == np.float32 else 'uchar'} {n}\n" for n in names)
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(points)}\n{properties}end_header\n"
    path.write_bytes(header.encode() + table.tobytes())
    return path


# --- every format ------------------------------------------------------------------------------


def check(cloud, path, normals=None, rgb=None, points=POINTS):
    assert cloud.path == path and cloud.kind == "points"
    assert cloud.xyz.dtype == np.float32 and cloud.xyz.shape == points.shape
    np.testing.assert_allclose(cloud.xyz, expected_points(points), atol=2e-6)
    if normals is None:
        assert cloud.normals is None
    else:
        np.testing.assert_allclose(cloud.normals, normals, atol=2e-6)
    if rgb is None:
        assert cloud.rgb is None
    else:
        np.testing.assert_array_equal(cloud.rgb, rgb)


def test_npy_with_and_without_normals(tmp_path):
    np.save(tmp_path / "a.npy", POINTS)
    np.save(tmp_path / "b.npy", np.hstack([POINTS, NORMALS * 3]).astype(np.float32))
    check(read_shape(tmp_path / "a.npy"), tmp_path / "a.npy")
    check(read_shape(tmp_path / "b.npy"), tmp_path / "b.npy", normals=NORMALS)


def test_npz_by_documented_key_or_only_array(tmp_path):
    np.savez(tmp_path / "keyed.npz", points=POINTS, labels=np.arange(200))
    np.savez_compressed(tmp_path / "only.npz", cloud=np.hstack([POINTS, NORMALS]))
    check(read_shape(tmp_path / "keyed.npz"), tmp_path / "keyed.npz")
    check(read_shape(tmp_path / "only.npz"), tmp_path / "only.npz", normals=NORMALS)


def test_text_files_whitespace_comma_semicolon_and_headers(tmp_path):
    np.savetxt(tmp_path / "plain.xyz", POINTS)
    np.savetxt(tmp_path / "tabs.txt", np.hstack([POINTS, NORMALS]), delimiter="\t", header="scan of a chair")
    np.savetxt(tmp_path / "named.csv", np.hstack([COLOURS, NORMALS, POINTS]), delimiter=",",
               header="Red,Green,Blue,nx,ny,nz,X,Y,Z", comments="")
    np.savetxt(tmp_path / "semi.csv", POINTS, delimiter=";", header='"x";"y";"z"', comments="")
    check(read_shape(tmp_path / "plain.xyz"), tmp_path / "plain.xyz")
    check(read_shape(tmp_path / "tabs.txt"), tmp_path / "tabs.txt", normals=NORMALS)
    check(read_shape(tmp_path / "named.csv"), tmp_path / "named.csv", normals=NORMALS, rgb=COLOURS)
    check(read_shape(tmp_path / "semi.csv"), tmp_path / "semi.csv")


@pytest.mark.parametrize("data", ["ascii", "binary"])
def test_pcd_written_as_pcl_does(tmp_path, data):
    fields = ("x", "y", "z", "normal_x", "normal_y", "normal_z", "rgb")
    columns = [*POINTS.T, *NORMALS.T, packed_rgb(COLOURS)]
    path = write_pcd(tmp_path / f"{data}.pcd", fields, "FFFFFFU", columns, data)
    check(read_shape(path), path, normals=NORMALS, rgb=COLOURS)


def test_pcd_binary_compressed(tmp_path):
    path = tmp_path / "lzf.pcd"
    PcdCloud.from_xyz_points(POINTS.astype(np.float32)).save(path, encoding=Encoding.BINARY_COMPRESSED)
    check(read_shape(path), path)


def test_organised_pcd_drops_its_nan_pixels(tmp_path):
    grid = np.vstack([POINTS, np.full((56, 3), np.nan)])  # a 16 x 16 depth image, 56 pixels missing
    path = write_pcd(tmp_path / "kinect.pcd", ("x", "y", "z"), "FFF", list(grid.T), "binary", 16, 16)
    cloud = read_shape(path)
    check(cloud, path)
    assert cloud.warnings == ("dropped 56 points with NaN/inf coordinates",)


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_and_laz_with_16_bit_colours(tmp_path, suffix):
    points = np.round(POINTS, 3)  # on the file's 1 mm grid
    path = write_las(tmp_path / f"scan{suffix}", points, COLOURS.astype(np.uint16) * 257)
    check(read_shape(path), path, rgb=COLOURS, points=points)


def test_ply_point_cloud_keeps_its_normals_and_colours(tmp_path):
    path = write_binary_ply(tmp_path / "scan.ply", POINTS, NORMALS, COLOURS)
    check(read_shape(path), path, normals=NORMALS, rgb=COLOURS)


def test_obj_of_bare_vertices_is_a_point_cloud(tmp_path):
    path = tmp_path / "vertices.obj"
    path.write_text("".join(f"v {x:.17g} {y:.17g} {z:.17g}\n" for x, y, z in POINTS))
    check(read_shape(path), path)


def test_mesh_gives_the_cloud_the_pipeline_samples(tmp_path):
    """A z-up mesh through the real manifest and points stages, and through read_shape."""
    lamp = trimesh.creation.cylinder(radius=0.3, height=2.0, sections=12)  # stands on z
    path = write_off(tmp_path / "meshes" / "lamp" / "lamp.off", lamp.vertices, lamp.faces)
    options = {"source": "folder", "root": str(tmp_path / "meshes"), "up_axis": "z"}
    manifest, out = tmp_path / "manifest.parquet", tmp_path / "points.parquet"
    listing = {"dataset": options, "test_fraction": 0.2, "objects_per_shard": 4}
    stages.build_manifest("mine", listing, manifest)
    settings = {"dataset": options, "max_faces": 300_000, "points": {"count": 512}, "seed": 3}
    stages.sample_shard("mine", shard_names(manifest)[0], manifest, settings, out)
    table, count = read_table(out, ["points", "normals"]), read_meta(out)["points_per_cloud"]
    stored = [column_to_points(table.column(name), count)[0] for name in ("points", "normals")]

    cloud = read_shape(path, up_axis="z", points=512, seed=3)
    assert cloud.kind == "mesh" and cloud.rgb is None
    order, stored_order = np.lexsort(cloud.xyz.T), np.lexsort(stored[0].T)  # the stage stores FPS order
    np.testing.assert_array_equal(cloud.xyz[order], stored[0][stored_order])
    np.testing.assert_array_equal(cloud.normals[order], stored[1][stored_order])
    assert np.argmax(np.ptp(cloud.xyz, axis=0)) == 1  # stands on y


# --- up axis -----------------------------------------------------------------------------------

# Where each axis's file coordinates land, written out by hand: the named axis goes to +y and
# the turn is a rotation (determinant +1), never a mirror.
TURNS = {
    "x": lambda x, y, z: (-y, x, z),
    "y": lambda x, y, z: (x, y, z),
    "z": lambda x, y, z: (x, z, -y),
    "-x": lambda x, y, z: (y, -x, z),
    "-y": lambda x, y, z: (x, -y, -z),
    "-z": lambda x, y, z: (x, -z, y),
}


@pytest.mark.parametrize("up_axis", sorted(TURNS))
def test_up_axis_turns_points_and_normals_onto_y(tmp_path, up_axis):
    np.save(tmp_path / "cloud.npy", np.hstack([POINTS, NORMALS]))
    cloud = read_shape(tmp_path / "cloud.npy", up_axis=up_axis)
    turned = np.column_stack(TURNS[up_axis](*POINTS.T))
    np.testing.assert_allclose(cloud.xyz, expected_points(turned), atol=2e-6)
    np.testing.assert_allclose(cloud.normals, np.column_stack(TURNS[up_axis](*NORMALS.T)), atol=2e-6)
    axis = {"x": 0, "y": 1, "z": 2}[up_axis[-1]]
    column = np.zeros((2, 3))
    column[1, axis] = 1.0 if up_axis[0] != "-" else -1.0  # a foot at 0 and a head 1 up
    np.save(tmp_path / "column.npy", column)
    foot, head = read_shape(tmp_path / "column.npy", up_axis=up_axis).xyz
    np.testing.assert_allclose(head - foot, [0, 2, 0], atol=1e-6)


def test_unknown_up_axis_is_refused(tmp_path):
    np.save(tmp_path / "a.npy", POINTS)
    with pytest.raises(ValueError, match="up axis must be one of x, y, z, -x, -y, -z, got 'w'"):
        read_shape(tmp_path / "a.npy", up_axis="w")


# --- huge clouds -------------------------------------------------------------------------------


def indexed_cloud(total):
    """Points whose normals encode their row: the angle of normal i in the xy plane is i * step."""
    angles = np.arange(total) * (2 * np.pi / total)
    normals = np.column_stack([np.cos(angles), np.sin(angles), np.zeros(total)])
    points = np.round(np.random.default_rng(1).uniform(-5, 5, (total, 3)), 3)
    return points, normals, angles


def test_huge_npy_is_cut_to_a_random_subset_of_its_own_points(tmp_path):
    points, normals, angles = indexed_cloud(5000)
    np.save(tmp_path / "huge.npy", np.hstack([points, normals]))
    cloud = read_shape(tmp_path / "huge.npy", max_points=1000, seed=7)
    angle = np.arctan2(cloud.normals[:, 1], cloud.normals[:, 0]) % (2 * np.pi)
    rows = np.rint(angle / angles[1]).astype(int) % 5000
    assert len(np.unique(rows)) == 1000 == len(cloud.xyz)
    np.testing.assert_allclose(cloud.xyz, expected_points(points[rows]), atol=2e-6)
    assert cloud.warnings == ("kept a random 1000 of 5000 points (max_points=1000)",)
    again, other = (read_shape(tmp_path / "huge.npy", max_points=1000, seed=seed) for seed in (7, 8))
    np.testing.assert_array_equal(again.xyz, cloud.xyz)
    assert not np.array_equal(other.xyz, cloud.xyz)


def test_laz_read_in_chunks_keeps_the_same_subset(tmp_path, monkeypatch):
    points, normals, _ = indexed_cloud(5000)
    np.save(tmp_path / "huge.npy", np.hstack([points, normals]))
    monkeypatch.setattr(point_files, "_LAS_CHUNK", 700)  # 8 chunks, subset rows straddling them
    laz = read_shape(write_las(tmp_path / "huge.laz", points), max_points=1000, seed=7)
    npy = read_shape(tmp_path / "huge.npy", max_points=1000, seed=7)
    np.testing.assert_allclose(laz.xyz, npy.xyz, atol=2e-6)
    assert laz.warnings == npy.warnings


def test_default_cap(tmp_path):
    np.save(tmp_path / "big.npy", np.random.default_rng(2).normal(size=(150_000, 3)).astype(np.float32))
    assert len(read_shape(tmp_path / "big.npy").xyz) == shape_files.DEFAULT_MAX_POINTS == 100_000


# --- bad input ---------------------------------------------------------------------------------


def garbage(size=600):
    return np.random.default_rng(3).integers(0, 256, size, dtype=np.uint8).tobytes()


def write_truncated_pcd(path):
    write_pcd(path, ("x", "y", "z"), "FFF", list(POINTS.T), "binary")
    path.write_bytes(path.read_bytes()[:-100])


def write_las_claiming(path, byte, count, version="1.2"):
    """A valid LAS file whose header then claims ``count`` records at ``byte`` (a corrupt count)."""
    header = laspy.LasHeader(point_format=0 if version == "1.2" else 6, version=version)
    las = laspy.LasData(header)
    las.x, las.y, las.z = POINTS.T
    las.write(path)
    content = bytearray(path.read_bytes())
    if byte == 243:  # LAS 1.4's extended records: their offset (the file's end) and count
        content[235:243] = len(content).to_bytes(8, "little")
    content[byte:byte + 4] = count.to_bytes(4, "little")
    path.write_bytes(bytes(content))


BAD_FILES = {  # file name -> (writer of its content, what the error says)
    "notes.docx": (lambda p: p.write_bytes(b"PK"), "unknown extension '.docx'"),
    "empty.npy": (lambda p: p.write_bytes(b""), "empty: the file has 0 bytes"),
    "empty.ply": (lambda p: p.write_bytes(b""), "empty: the file has 0 bytes"),
    "none.npy": (lambda p: np.save(p, np.zeros((0, 3))), "empty: no points"),
    "header_only.csv": (lambda p: p.write_text("x,y,z\n"), "empty: no points"),
    "comments.xyz": (lambda p: p.write_text("# exported by nothing\n\n"), "empty: no points"),
    "empty.las": (lambda p: write_las(p, np.zeros((0, 3))), "empty: no points"),
    "garbage.pcd": (lambda p: p.write_bytes(garbage()), "unreadable"),
    "truncated.pcd": (write_truncated_pcd, "unreadable"),
    "garbage.npy": (lambda p: p.write_bytes(garbage()), "unreadable"),
    "garbage.npz": (lambda p: p.write_bytes(garbage()), "unreadable"),
    "garbage.laz": (lambda p: p.write_bytes(b"LASF" + garbage()), "unreadable"),
    "not_las.las": (lambda p: p.write_bytes(garbage()), "not a LAS file"),
    "record_count.las": (lambda p: write_las_claiming(p, 100, 2**32 - 1), "corrupt LAS header"),
    "extended_count.las": (lambda p: write_las_claiming(p, 243, 2**32 - 1, "1.4"), "corrupt LAS header"),
    "garbage.ply": (lambda p: p.write_bytes(b"ply\n" + garbage()), "unreadable"),
    "binary.txt": (lambda p: p.write_bytes(garbage()), "unreadable"),
    "ragged.xyz": (lambda p: p.write_text("0 0 0\n1 1\n"), "unreadable"),
    "words.csv": (lambda p: p.write_text("x,y,z\n1,2,three\n"), "unreadable"),
    "pickled.npy": (lambda p: np.save(p, np.array([{"xyz": 1}]), allow_pickle=True), "unreadable"),
    "all_nan.npy": (lambda p: np.save(p, np.full((5, 3), np.nan)), "no finite points"),
    "inf.xyz": (lambda p: p.write_text("inf 0 0\n0 nan 0\n"), "no finite points"),
    "one_spot.npy": (lambda p: np.save(p, np.ones((4, 3))), "unusable cloud"),
    "four_columns.npy": (lambda p: np.save(p, np.zeros((5, 4))), "wrong array: float64 [5, 4]"),
    "flat.npy": (lambda p: np.save(p, np.zeros(9)), "wrong array: float64 [9]"),
    "intensity.txt": (lambda p: p.write_text("0 0 0 7\n1 1 1 9\n"), "wrong array: float64 [2, 4]"),
    "two.npz": (lambda p: np.savez(p, a=POINTS, b=POINTS), "holds arrays a, b: name the cloud 'points'"),
    "no_xyz.csv": (lambda p: p.write_text("u,v,w\n1,2,3\n"), "header names no x, y, z columns"),
    "no_xyz.pcd": (lambda p: write_pcd(p, ("u", "v", "w"), "FFF", list(POINTS.T)), "no x, y, z fields"),
    "nothing.obj": (lambda p: p.write_text("# no vertices, no faces\n"), "empty: no faces and no points"),
    "flat.obj": (lambda p: p.write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n"),
                 "only degenerate (zero-area) faces and no points"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_refused_in_one_line_naming_it(tmp_path, name):
    write, reason = BAD_FILES[name]
    path = tmp_path / name
    write(path)
    with pytest.raises(ShapeFileError) as caught:
        read_shape(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and reason in message and "\n" not in message
    assert caught.value.path == path


def test_missing_file_dangling_link_and_folder_are_unreadable(tmp_path):
    (tmp_path / "folder.npy").mkdir()
    (tmp_path / "dangling.ply").symlink_to(tmp_path / "gone.ply")
    for name in ("absent.pcd", "dangling.ply", "folder.npy"):
        with pytest.raises(ShapeFileError, match=f"{name}: unreadable: "):
            read_shape(tmp_path / name)


def test_file_over_the_size_budget_is_refused_before_parsing(tmp_path):
    from cg3d.data.meshes import GeometryBudget

    np.savetxt(tmp_path / "big.xyz", POINTS)
    with pytest.raises(ShapeFileError, match="over_budget: .* MB \\(data.max_file_mb=0.001\\)"):
        read_shape(tmp_path / "big.xyz", budget=GeometryBudget(max_file_mb=0.001))


def test_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(ShapeFileError("a/b.pcd", "empty: no points")))
    assert str(error) == "a/b.pcd: empty: no points" and error.reason == "empty: no points"


# --- folders -----------------------------------------------------------------------------------


def test_folders_expand_recursively_to_shape_files_in_sorted_order(tmp_path):
    for name in ("b/scan.PCD", "a/z.npy", "a/deep/chair.obj", "c.ply", "a/readme.md", "a/chair.mtl"):
        (tmp_path / "shapes" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "shapes" / name).write_text("")
    (tmp_path / "shapes" / "d.obj").mkdir()  # a folder named like a mesh is just a folder
    listed = list(iter_shape_files([tmp_path / "shapes", tmp_path / "one.docx"]))
    expected = ["a/deep/chair.obj", "a/z.npy", "b/scan.PCD", "c.ply"]
    assert listed == [tmp_path / "shapes" / name for name in expected] + [tmp_path / "one.docx"]


def test_folder_without_shape_files_is_an_error_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.md").write_text("hi")
    for folder in ("empty", "docs"):
        with pytest.raises(ShapeFileError, match=f"{folder}: no shape files in this folder"):
            list(iter_shape_files([tmp_path / folder]))
