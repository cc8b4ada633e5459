"""The synthetic factory: product-surface frames from many lines, and fleet fixtures.

Frames (`linefleet data generate`): `profiles` (each line's nuisance), `drift` (how it
changes over time), `surfaces` (materials), `defects` (one painter per defect class),
`nuisance` (the camera's view), `render` (one frame in memory), `dataset` (write a
dataset), `manifest` (its on-disk format), `summary` (what it holds), `fleetlines`
(profiles for a fleet repository's cameras), `stats` (frame input statistics,
docs/frame-stats.md).

Fleet fixtures: `fleetgen` (a valid fleet repository of any size), `onnx_fixtures` (tiny
ONNX classifiers that follow the model I/O contract).

Imports only `linefleet_core`, numpy and OpenCV (and PyYAML for `fleetgen`).
"""
