//! `spool stats` as an operator runs it: after real workers ran a known mix of jobs, on
//! SQLite and on PostgreSQL when it is reachable.

mod common;

use common::{drop_schema, stores};

#[test]
fn stats_report_counts_rates_and_percentiles_per_queue_and_job() {
    for env in stores() {
        let mut lines = String::new();
        for _ in 0..8 {
            lines.push_str("{\"job\":\"sleep\",\"queue\":\"mail\",\"payload\":{\"ms\":60}}\n");
        }
        lines.push_str("{\"job\":\"fail\",\"queue\":\"mail\",\"tries\":1}\n");
        lines.push_str("{\"job\":\"noop\",\"queue\":\"pdf\"}\n");
        env.dispatch_lines(&[], &lines);
        env.ok(&[
            "work",
            "--queue",
            "mail,pdf",
            "--until-done",
            "--concurrency",
            "10",
        ]);

        let json = env.json(&["stats", "--json", "--since", "15m"]);
        assert_eq!(json["window_ms"], 900_000);
        let queues = json["queues"].as_array().unwrap();
        let mail = queues.iter().find(|q| q["name"] == "mail").unwrap();
        assert_eq!(mail["enqueued"], 9);
        assert_eq!(mail["completed"], 8);
        assert_eq!(mail["failed"], 1);
        let rate = mail["failure_rate"].as_f64().unwrap();
        assert!((rate - 1.0 / 9.0).abs() < 1e-9, "{rate}");
        assert!(mail["throughput_per_min"].as_f64().unwrap() > 0.0);
        assert_eq!(mail["oldest_ready_age_ms"], 0);
        // The sleeps ran about 60 ms: p50 is that bucket's bound (60 to 90 ms).
        let p50 = mail["run_ms"]["p50"].as_f64().unwrap();
        assert!((60.0..=90.0).contains(&p50), "run p50 {p50}");
        for key in ["p50", "p95", "p99"] {
            assert!(mail["wait_ms"][key].is_number(), "wait {key}");
        }
        let jobs: Vec<&str> = json["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].as_str().unwrap())
            .collect();
        assert_eq!(jobs, ["fail", "noop", "sleep"]);

        let only = env.json(&["stats", "--json", "--queue", "pdf"]);
        let names: Vec<&str> = only["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["pdf"]);

        let table = env.ok(&["stats", "--since", "24h"]);
        assert!(table.starts_with("Last 24h:"), "{table}");
        assert!(table.contains("QUEUE") && table.contains("mail"), "{table}");

        let refused = env.run(&["stats", "--since", "90d"]);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("from 1s to 30d"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
        drop_schema(&env);
    }
}
