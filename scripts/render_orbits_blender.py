"""Render 360-degree orbits of 3D scans with Blender's Eevee on a white background (paper appendix C.2.1).

Run inside Blender (not the project's Python); everything after `--` is this script's arguments:

    blender -b -P scripts/render_orbits_blender.py -- --scans /data/OmniObject3D/raw_scans \
        --out /data/omniobject3d_orbits --frames 84 --size 576 --limit 30 --seed 0

Each scan `<scans>/<category>/<object>/Scan/Scan.obj` (OmniObject3D's raw-scan layout; any folder tree of
.obj/.glb/.ply files works) becomes `<out>/<object>/000.png .. 083.png`: the camera turns 360 / frames degrees
about the vertical axis between frames, at a fixed elevation, looking at the object scaled to a unit box.
Then: `python run.py experiment=table3 dataset.path=<out>`. Written against the Blender 3.6 / 4.x Python API
but not run by the project's tests (no Blender there): check the frames of one object before rendering all.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

import bpy  # noqa: F401  (only inside Blender)
from mathutils import Vector

MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply")


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(description="Render white-background orbits with Eevee")
    parser.add_argument("--scans", type=Path, required=True, help="folder searched recursively for meshes")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=84, help="renders per full turn (paper: 84)")
    parser.add_argument("--size", type=int, default=576, help="square resolution in pixels")
    parser.add_argument("--elevation", type=float, default=0.0, help="camera elevation in degrees")
    parser.add_argument("--distance", type=float, default=2.0, help="camera distance to the unit-box object")
    parser.add_argument("--fov", type=float, default=33.8, help="camera field of view in degrees")
    parser.add_argument("--limit", type=int, default=None, help="render this many objects, drawn with --seed")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def find_meshes(root: Path) -> list[Path]:
    meshes = sorted(p for p in root.rglob("*") if p.suffix.lower() in MESH_SUFFIXES)
    return [p for p in meshes if p.suffix.lower() != ".obj" or p.stem.lower() != "collision"]


def object_name(mesh: Path, root: Path) -> str:
    """OmniObject3D: <category>/<object>/Scan/Scan.obj -> <object>; otherwise the file's stem."""
    parts = mesh.relative_to(root).parts
    return parts[-3] if len(parts) >= 3 and parts[-2].lower() == "scan" else mesh.stem


def reset_scene(size: int) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    for engine in ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE"):
        try:
            scene.render.engine = engine
            break
        except TypeError:
            continue
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.view_settings.view_transform = "Standard"  # white stays white (Filmic/AgX would grey it)
    world = bpy.data.worlds.new("white")
    world.use_nodes = True
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)  # white ambient light and background
    background.inputs["Strength"].default_value = 1.0
    scene.world = world


def import_mesh(path: Path) -> list:
    before = set(bpy.data.objects)
    suffix = path.suffix.lower()
    if suffix == ".obj":
        if hasattr(bpy.ops.wm, "obj_import"):
            bpy.ops.wm.obj_import(filepath=str(path))
        else:
            bpy.ops.import_scene.obj(filepath=str(path))
    elif suffix in (".glb", ".gltf"):
        bpy.ops.import_scene.gltf(filepath=str(path))
    elif hasattr(bpy.ops.wm, "ply_import"):
        bpy.ops.wm.ply_import(filepath=str(path))
    else:
        bpy.ops.import_mesh.ply(filepath=str(path))
    return [o for o in bpy.data.objects if o not in before and o.type == "MESH"]


def normalize(meshes: list) -> None:
    """Centre the meshes at the origin and scale their joint bounding box to a longest side of 1."""
    corners = [o.matrix_world @ Vector(c) for o in meshes for c in o.bound_box]
    low = Vector([min(c[i] for c in corners) for i in range(3)])
    high = Vector([max(c[i] for c in corners) for i in range(3)])
    scale = 1.0 / max(high - low)
    centre = (low + high) / 2
    for o in meshes:
        o.location = (o.location - centre) * scale
        o.scale = o.scale * scale
    bpy.context.view_layer.update()


def add_camera(fov: float):
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.angle = math.radians(fov)
    bpy.context.scene.collection.objects.link(camera)
    bpy.context.scene.camera = camera
    target = bpy.data.objects.new("target", None)
    bpy.context.scene.collection.objects.link(target)
    track = camera.constraints.new(type="TRACK_TO")
    track.target, track.track_axis, track.up_axis = target, "TRACK_NEGATIVE_Z", "UP_Y"
    return camera


def render_orbit(out_dir: Path, frames: int, elevation: float, distance: float, fov: float) -> None:
    camera = add_camera(fov)
    out_dir.mkdir(parents=True, exist_ok=True)
    tilt = math.radians(elevation)
    for frame in range(frames):
        azimuth = 2 * math.pi * frame / frames
        camera.location = (distance * math.cos(tilt) * math.sin(azimuth), -distance * math.cos(tilt) * math.cos(azimuth),
                           distance * math.sin(tilt))
        bpy.context.scene.render.filepath = str(out_dir / f"{frame:03d}.png")
        bpy.ops.render.render(write_still=True)


def main() -> None:
    args = parse_args()
    meshes = find_meshes(args.scans)
    if args.limit is not None:
        meshes = sorted(random.Random(args.seed).sample(meshes, min(args.limit, len(meshes))))
    for index, mesh in enumerate(meshes):
        name = object_name(mesh, args.scans)
        target = args.out / name
        if target.is_dir() and len(list(target.glob("*.png"))) == args.frames:
            continue  # already rendered: the script resumes
        print(f"[{index + 1}/{len(meshes)}] {mesh} -> {target}", flush=True)
        reset_scene(args.size)
        normalize(import_mesh(mesh))
        render_orbit(target, args.frames, args.elevation, args.distance, args.fov)


if __name__ == "__main__":
    main()
