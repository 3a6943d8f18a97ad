//! A Redis Cluster of three primaries that the tests start themselves, on free local ports
//! (`redis-server` with `cluster-enabled yes`, joined by `redis-cli --cluster create`). Each
//! node keeps an append-only file, so a node killed and started again comes back with its
//! keys. A watchdog shell stops every node and removes their directory once the test process
//! is gone.
//!
//! Without `redis-server` and `redis-cli` the tests print `SKIPPED`; under `CI=true` that is
//! a failure.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// A running cluster.
pub(crate) struct Cluster {
    /// The store URL: the first node, the others as seed nodes.
    pub url: String,
    /// The nodes' ports.
    pub ports: Vec<u16>,
    dir: PathBuf,
}

impl Cluster {
    /// Starts three primaries and joins them; `None` (and `SKIPPED`) when the Redis binaries
    /// are missing outside CI.
    pub(crate) fn start() -> Option<Cluster> {
        // One start at a time in a process: each picks ports by trying them.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        for binary in ["redis-server", "redis-cli"] {
            if !on_path(binary) {
                let why = format!("{binary} is not installed (apt-get install redis-server)");
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("{why} (CI=true: the Redis Cluster tests need it)");
                }
                eprintln!("SKIPPED: Redis Cluster tests: {why}");
                return None;
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("spool-redis-cluster-")
            .tempdir()
            .expect("a temp dir")
            .keep();
        let ports = free_ports(3);
        let cluster = Cluster {
            url: format!(
                "redis://127.0.0.1:{}/0?cluster=true&node=127.0.0.1:{}",
                ports[0], ports[1]
            ),
            ports,
            dir,
        };
        for &port in &cluster.ports {
            std::fs::create_dir_all(cluster.node_dir(port)).expect("a node dir");
            cluster.start_node(port);
        }
        cluster.watch();
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        cluster.wait_ok();
        Some(cluster)
    }

    fn node_dir(&self, port: u16) -> PathBuf {
        self.dir.join(port.to_string())
    }

    /// Starts (or starts again) the node on `port`, from its own directory, and waits until
    /// it accepts connections.
    pub(crate) fn start_node(&self, port: u16) {
        let dir = self.node_dir(port);
        let status = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            // Short, so a stopped node is noticed within seconds; the others keep serving
            // their own slots meanwhile.
            .args(["--cluster-node-timeout", "2000"])
            .args(["--cluster-require-full-coverage", "no"])
            // Written before each reply goes out, so a killed process loses nothing.
            .args(["--appendonly", "yes", "--appendfsync", "no", "--save", ""])
            .args(["--daemonize", "yes"])
            .arg("--dir")
            .arg(&dir)
            .arg("--pidfile")
            .arg(dir.join("redis.pid"))
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .status()
            .expect("start redis-server");
        assert!(
            status.success(),
            "redis-server on port {port} did not start"
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the node on `port` with SIGKILL and waits until it is gone.
    pub(crate) fn kill_node(&self, port: u16) {
        let pid_file = self.node_dir(port).join("redis.pid");
        let pid = std::fs::read_to_string(&pid_file).expect("the node's pid file");
        let pid = pid.trim();
        let killed = Command::new("kill").args(["-9", pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -9 {pid}");
        while Path::new(&format!("/proc/{pid}")).exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(pid_file);
    }

    /// Waits until every node reports the cluster healthy.
    pub(crate) fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for &port in &self.ports {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                if info.lines().any(|l| l.trim() == "cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not become healthy on port {port}: {info}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// A shell that stops every node (by its pid file) and removes the directory once this
    /// test process is gone, however it ends.
    fn watch(&self) {
        let script = "while [ -d /proc/$1 ]; do sleep 0.5; done; \
                      for f in \"$2\"/*/redis.pid; do [ -f \"$f\" ] && kill -9 $(cat \"$f\"); done; \
                      sleep 0.2; rm -rf \"$2\"";
        let mut watchdog = Command::new("sh")
            .args(["-c", script, "watchdog"])
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the cluster watchdog");
        std::thread::spawn(move || watchdog.wait());
    }
}

impl Cluster {
    /// Runs `redis-cli -p PORT ARGS...`; its output.
    pub(crate) fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The slot of `key`.
    pub(crate) fn slot(&self, key: &str) -> u16 {
        self.cli(self.ports[0], &["cluster", "keyslot", key])
            .parse()
            .expect("a slot number")
    }

    /// The port and node id of the primary serving `slot`, from `CLUSTER NODES`.
    pub(crate) fn owner(&self, slot: u16) -> (u16, String) {
        let nodes = self.cli(self.ports[0], &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let serves = fields.iter().skip(8).any(|range| {
                let (from, to) = range.split_once('-').unwrap_or((range, range));
                matches!((from.parse::<u16>(), to.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
            });
            if serves {
                let port = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .expect("a node address");
                return (port, fields[0].to_string());
            }
        }
        panic!("no node serves slot {slot}:\n{nodes}");
    }

    /// The node id of the node on `port`.
    pub(crate) fn id(&self, port: u16) -> String {
        self.cli(port, &["cluster", "myid"])
    }

    /// Moves `slot` with its keys to the node on `to`, the way `redis-cli --cluster reshard`
    /// does: IMPORTING and MIGRATING, MIGRATE the keys, then the new owner everywhere.
    pub(crate) fn move_slot(&self, slot: u16, to: u16) {
        let slot = slot.to_string();
        let (from, from_id) = self.owner(slot.parse().unwrap());
        let to_id = self.id(to);
        self.cli(to, &["cluster", "setslot", &slot, "importing", &from_id]);
        self.cli(from, &["cluster", "setslot", &slot, "migrating", &to_id]);
        loop {
            let keys = self.cli(from, &["cluster", "getkeysinslot", &slot, "100"]);
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let port = to.to_string();
            let mut args = vec!["migrate", "127.0.0.1", &port, "", "0", "5000", "keys"];
            args.extend(keys);
            let moved = self.cli(from, &args);
            assert_eq!(moved, "OK", "MIGRATE failed");
        }
        for &port in &self.ports {
            self.cli(port, &["cluster", "setslot", &slot, "node", &to_id]);
        }
    }
}

fn on_path(binary: &str) -> bool {
    let paths = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&format!("{paths}:/usr/sbin:/usr/local/bin"))
        .any(|dir| dir.join(binary).is_file())
}

/// `n` ports below 55536 that are free, each with its cluster bus port (port + 10000) free too.
fn free_ports(n: usize) -> Vec<u16> {
    let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
    let mut ports = Vec::new();
    // Start somewhere different in each process, so parallel test binaries rarely collide.
    let mut port = 20_000 + (std::process::id() % 2_000) as u16 * 10;
    while ports.len() < n {
        if free(port) && free(port + 10_000) {
            ports.push(port);
        }
        port += 1;
        assert!(port < 45_000, "no free ports for a Redis Cluster");
    }
    ports
}
