//! Helpers shared by qmp-proto's integration tests.

pub mod qemu_ga;
