"""Latent-space tools over the Run interface: interpolation, attribute and principal directions,
inversion of real photos, pivotal tuning, and the checks that photos are aligned face crops.

    from facelib import load_run
    from facelib.latent import compute_attribute_directions, invert_file, move
    run = load_run("runs/x")
    d = compute_attribute_directions(run, classifier, ["Smiling", "Male"])
    r = invert_file(run, "face.jpg")
    edited = run.synthesize(move(r.z, d["Smiling"], 2.0), r.attrs)
    smiling = edit_attributes(run, r, {"Smiling": 1})  # conditional runs: same z, Smiling on
    tuned = tune_generator(run, r)  # the generator tuned to draw the photo: edits keep its face
"""

from facelib.latent.align import load_face
from facelib.latent.directions import (
    DirectionSet, EntanglementRow, available_directions, compute_attribute_directions,
    conditional_direction, direction_grid, entanglement, find_saved_direction, fit_direction,
    format_entanglement, load_directions, move, orthogonalize, principal_directions,
    save_directions,
)
from facelib.latent.editing import edit_attributes, set_attributes
from facelib.latent.interpolate import (
    interpolate, interpolation_gif, interpolation_grid, interpolation_images, lerp, slerp,
    write_gif,
)
from facelib.latent.inversion import (
    InversionResult, encode, evaluate_inversion, invert, invert_file, load_encoder,
    reconstruction_errors, train_encoder,
)
from facelib.latent.tuning import PivotalTuner, tune_generator

__all__ = [
    "DirectionSet", "EntanglementRow", "InversionResult", "PivotalTuner", "available_directions",
    "compute_attribute_directions", "conditional_direction", "direction_grid",
    "edit_attributes", "encode", "entanglement",
    "evaluate_inversion", "find_saved_direction", "fit_direction",
    "format_entanglement", "interpolate", "interpolation_gif", "interpolation_grid",
    "interpolation_images", "invert", "invert_file", "lerp", "load_directions", "load_encoder",
    "load_face", "move", "orthogonalize", "principal_directions", "reconstruction_errors",
    "save_directions", "set_attributes", "slerp", "train_encoder", "tune_generator", "write_gif",
]
