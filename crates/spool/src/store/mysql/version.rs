//! The server's version: Spool claims jobs with `SELECT ... FOR UPDATE SKIP LOCKED`, which
//! MySQL has since 8.0.1 and MariaDB since 10.6, and refuses older servers when it opens.

use std::fmt;

/// The oldest servers Spool supports, for error messages.
pub const MINIMUM_VERSIONS: &str = "MySQL 8.0.1 or MariaDB 10.6";

/// Which server speaks the MySQL protocol at the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Oracle MySQL (or a compatible server that does not call itself MariaDB).
    MySql,
    /// MariaDB.
    MariaDb,
}

/// A server version as `SELECT VERSION()` reports it, e.g. `10.11.19-MariaDB-0+deb12u1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVersion {
    /// The server kind.
    pub flavor: Flavor,
    /// `major.minor.patch`.
    pub number: (u32, u32, u32),
}

impl ServerVersion {
    /// Reads a version string; `None` if it does not start with a dotted version number.
    pub fn parse(version: &str) -> Option<ServerVersion> {
        let flavor = if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        // Some MariaDB releases prefix the real version with `5.5.5-` for old clients.
        let version = match flavor {
            Flavor::MariaDb => version.strip_prefix("5.5.5-").unwrap_or(version),
            Flavor::MySql => version,
        };
        let numeric = version
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap_or("");
        let mut parts = numeric.split('.').map(str::parse::<u32>);
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let patch = match parts.next() {
            Some(patch) => patch.ok()?,
            None => 0,
        };
        Some(ServerVersion {
            flavor,
            number: (major, minor, patch),
        })
    }

    /// Whether this server has everything Spool uses (`SKIP LOCKED` above all).
    pub fn is_supported(&self) -> bool {
        let minimum = match self.flavor {
            Flavor::MySql => (8, 0, 1),
            Flavor::MariaDb => (10, 6, 0),
        };
        self.number >= minimum
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, patch) = self.number;
        let name = match self.flavor {
            Flavor::MySql => "MySQL",
            Flavor::MariaDb => "MariaDB",
        };
        write!(f, "{name} {major}.{minor}.{patch}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> ServerVersion {
        ServerVersion::parse(s).unwrap_or_else(|| panic!("cannot parse {s}"))
    }

    #[test]
    fn versions_are_read_and_judged() {
        let cases = [
            (
                "10.11.19-MariaDB-0+deb12u1",
                Flavor::MariaDb,
                (10, 11, 19),
                true,
            ),
            (
                "5.5.5-10.6.2-MariaDB-log",
                Flavor::MariaDb,
                (10, 6, 2),
                true,
            ),
            ("10.5.2-MariaDB", Flavor::MariaDb, (10, 5, 2), false),
            ("11.4.2-MariaDB", Flavor::MariaDb, (11, 4, 2), true),
            ("8.0.36", Flavor::MySql, (8, 0, 36), true),
            ("8.0.0-dmr-log", Flavor::MySql, (8, 0, 0), false),
            ("8.0.1", Flavor::MySql, (8, 0, 1), true),
            ("8.4.0-commercial", Flavor::MySql, (8, 4, 0), true),
            ("5.7.44", Flavor::MySql, (5, 7, 44), false),
            ("9.1", Flavor::MySql, (9, 1, 0), true),
        ];
        for (text, flavor, number, supported) in cases {
            let v = parsed(text);
            assert_eq!((v.flavor, v.number), (flavor, number), "{text}");
            assert_eq!(v.is_supported(), supported, "{text}");
        }
        assert_eq!(parsed("10.5.2-MariaDB").to_string(), "MariaDB 10.5.2");
    }

    #[test]
    fn garbage_is_not_a_version() {
        for text in ["", "MariaDB", "x.1.2", "8"] {
            assert_eq!(ServerVersion::parse(text), None, "{text}");
        }
    }
}
