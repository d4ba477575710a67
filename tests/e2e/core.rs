//! Core behaviour of the binary: keys, resolution, config, errors.
