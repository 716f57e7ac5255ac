"""The core every path shares, knowing no device, no emulator and no model: the physics of a Raman spectrometer
(:mod:`ramancore.physics`), the one raw pipeline (:mod:`ramancore.raw_pipeline`) and the preprocessing of the model
input (:mod:`ramancore.preprocessing`). ``firmware_bridge`` (the emulator too), ``edge`` and ``trainer`` build on it."""
