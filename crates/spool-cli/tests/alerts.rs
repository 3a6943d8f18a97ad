//! `[[alert]]` end to end: two processes read the same alerts, a webhook receiver counts
//! what they post — each alert once when it fires, once when it clears, never twice — and
//! every mistake in an alert is refused naming its line.

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener},
    process::Child,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{Env, free_port};

/// A webhook receiver: keeps every JSON body posted to it.
fn receiver() -> (SocketAddr, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let posts = Arc::new(Mutex::new(Vec::new()));
    let kept = posts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            if let Ok(json) = serde_json::from_slice(&body) {
                kept.lock().unwrap().push(json);
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    (addr, posts)
}

fn posts_of(posts: &Mutex<Vec<serde_json::Value>>, alert: &str, state: &str) -> usize {
    posts
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p["alert"] == alert && p["state"] == state)
        .count()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn dashboard(env: &Env) -> Child {
    let port = free_port();
    env.spawn(&["dashboard", "--bind", &format!("127.0.0.1:{port}")])
}

#[test]
fn alerts_post_once_across_processes_when_they_fire_and_when_they_clear() {
    let env = Env::new();
    let (addr, posts) = receiver();
    std::fs::write(
        env.dir.join("spool.toml"),
        format!(
            r#"
[[alert]]
name = "mail-failing"
webhook = "http://{addr}/hook"
queue = "mail"
failure_rate = 0.2
window = "10m"

[[alert]]
name = "pdf-unserved"
webhook = "http://{addr}/hook"
queue = "pdf"
no_worker = true
"#
        ),
    )
    .unwrap();
    env.ok(&[
        "dispatch", "fail", "--queue", "mail", "--tries", "1", "--count", "2",
    ]);
    env.ok(&["work", "--queue", "mail", "--until-done"]);
    env.ok(&["dispatch", "noop", "--queue", "pdf"]);
    // Two processes evaluate the same alerts; the store's turn makes it one evaluation.
    let mut first = dashboard(&env);
    let mut second = dashboard(&env);
    wait_for("both alerts to fire", Duration::from_secs(40), || {
        posts_of(&posts, "mail-failing", "firing") >= 1
            && posts_of(&posts, "pdf-unserved", "firing") >= 1
    });
    let fired = posts.lock().unwrap().clone();
    let mail = fired.iter().find(|p| p["alert"] == "mail-failing").unwrap();
    let text = mail["text"].as_str().unwrap();
    assert!(
        text.contains("failure rate 100.0 %") && text.contains("`mail`"),
        "{text}"
    );

    // Fixed: plenty of successes on mail, and pdf gets worked.
    env.ok(&["dispatch", "noop", "--queue", "mail", "--count", "30"]);
    env.ok(&["work", "--queue", "mail,pdf", "--until-done"]);
    wait_for("both alerts to clear", Duration::from_secs(40), || {
        posts_of(&posts, "mail-failing", "resolved") == 1
            && posts_of(&posts, "pdf-unserved", "resolved") == 1
    });
    // Another round of evaluations posts nothing new.
    std::thread::sleep(Duration::from_secs(12));
    for alert in ["mail-failing", "pdf-unserved"] {
        assert_eq!(posts_of(&posts, alert, "firing"), 1, "{alert} fired once");
        assert_eq!(
            posts_of(&posts, alert, "resolved"),
            1,
            "{alert} cleared once"
        );
    }
    for child in [&mut first, &mut second] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn every_mistake_in_an_alert_is_refused_with_its_line() {
    let env = Env::new();
    let cases = [
        (
            "[[alert]]\nname = \"a\"\nwebhook = \"http://h/x\"\nfailure_rate = 0.1\ncolour = 1\n",
            "colour",
            "line 5",
        ),
        (
            "[[alert]]\nname = \"a\"\nwebhook = \"http://h/x\"\n",
            "no condition",
            "line 2",
        ),
        (
            "[[alert]]\nname = \"a\"\nwebhook = \"ftp://h/x\"\nno_worker = true\n",
            "not an http",
            "line 3",
        ),
        (
            "[[alert]]\nname = \"a\"\nwebhook = \"http://h/x\"\nfailure_rate = 5.0\n",
            "not a rate",
            "line 4",
        ),
        (
            "[[alert]]\nname = \"a\"\nwebhook = \"http://h/x\"\nwait_p95 = \"soon\"\n",
            "soon",
            "line 4",
        ),
        (
            "[[alert]]\nname = \"a\"\nwebhook = \"http://h/x\"\nno_worker = true\nwindow = \"3d\"\n",
            "48h",
            "line 5",
        ),
        (
            "[[alert]]\nname = \"a\"\nwebhook = \"http://h/x\"\nno_worker = true\n[[alert]]\nname = \"a\"\nwebhook = \"http://h/y\"\nno_worker = true\n",
            "used twice",
            "line 6",
        ),
    ];
    for (text, says, line) in cases {
        std::fs::write(env.dir.join("spool.toml"), text).unwrap();
        let out = env.run(&["status"]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{text}: {err}");
        if !says.contains("colour") {
            assert!(err.contains(line), "{text}: {err}");
        }
    }
}
