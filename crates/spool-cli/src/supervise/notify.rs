//! systemd's notification protocol (`Type=notify`): readiness, watchdog and stopping, as
//! datagrams to `$NOTIFY_SOCKET`. Without the variable, nothing is sent.

use std::time::Duration;

/// The notification socket of the service manager, if any.
#[derive(Debug)]
pub(crate) struct Notifier {
    #[cfg(unix)]
    socket: Option<(
        std::os::unix::net::UnixDatagram,
        std::os::unix::net::SocketAddr,
    )>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` (a path, or `@name` for Linux's abstract namespace).
    pub(crate) fn from_env() -> Notifier {
        #[cfg(unix)]
        {
            let socket = std::env::var("NOTIFY_SOCKET").ok().and_then(|name| {
                Some((
                    std::os::unix::net::UnixDatagram::unbound().ok()?,
                    address(&name)?,
                ))
            });
            Notifier { socket }
        }
        #[cfg(not(unix))]
        Notifier {}
    }

    /// Sends `state` (`READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=...`); failures are
    /// ignored, as a missed notification must not stop the supervisor.
    pub(crate) fn send(&self, state: &str) {
        #[cfg(unix)]
        if let Some((socket, addr)) = &self.socket {
            let _ = socket.send_to_addr(state.as_bytes(), addr);
        }
        #[cfg(not(unix))]
        let _ = state;
    }

    /// How often to send `WATCHDOG=1`: half the `$WATCHDOG_USEC` systemd set, if it did (for
    /// this process).
    pub(crate) fn watchdog_interval() -> Option<Duration> {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        if let Ok(pid) = std::env::var("WATCHDOG_PID")
            && pid.parse::<u32>().ok()? != std::process::id()
        {
            return None;
        }
        Some(Duration::from_micros(usec / 2).max(Duration::from_millis(100)))
    }
}

#[cfg(unix)]
fn address(name: &str) -> Option<std::os::unix::net::SocketAddr> {
    if let Some(abstract_name) = name.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            return std::os::unix::net::SocketAddr::from_abstract_name(abstract_name).ok();
        }
        #[cfg(not(target_os = "linux"))]
        return None;
    }
    std::os::unix::net::SocketAddr::from_pathname(name).ok()
}
