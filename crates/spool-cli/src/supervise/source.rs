//! Reading the supervisor's pools from the configuration file.

use std::path::{Path, PathBuf};

use super::spec::SupervisorSpec;

/// The configuration file: the one named, else `spool.toml` in the working directory.
pub(crate) fn config_path(named: Option<&Path>) -> PathBuf {
    named.map_or_else(|| PathBuf::from("spool.toml"), Path::to_path_buf)
}

/// Reads the `[supervisor]` and `[[pool]]` sections of `path`.
pub(crate) fn load(path: &Path) -> Result<SupervisorSpec, String> {
    Err(format!(
        "cannot read {}: configuration files are not supported yet",
        path.display()
    ))
}
